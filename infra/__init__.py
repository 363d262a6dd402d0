"""AWS CDK stacks and constructs, and the operator CLI."""
