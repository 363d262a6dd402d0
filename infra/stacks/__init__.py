"""One module per CloudFormation stack of the app."""
