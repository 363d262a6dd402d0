"""On-demand prices of SageMaker instances from the AWS Price List API, for the smoke test's cost step."""
from __future__ import annotations

import json

from botocore.exceptions import ClientError

PRICE_LIST_REGION = "us-east-1"
"""The Price List API answers from us-east-1 (and a few other regions) for every region's prices."""
USAGE_KINDS = {"training": "Train", "transform": "Tsform", "hosting": "Host"}
"""The SageMaker price list's usage type per kind of instance use: `<region code>-Host:ml.m5.large`, ..."""


def price_list_hourly(session, instance_type: str, use: str) -> float | None:
    """On-demand USD per hour of ``instance_type`` for ``use`` in the session's region, from the Price List
    API (https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/using-price-list-query-api.html);
    None when the API cannot be asked (no permission) or lists no such product."""
    try:
        pricing = session.client("pricing", region_name=PRICE_LIST_REGION)
        answer = pricing.get_products(ServiceCode="AmazonSageMaker", Filters=[
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": session.region_name},
            {"Type": "TERM_MATCH", "Field": "instanceName", "Value": instance_type},
        ], MaxResults=100)
    except ClientError:
        return None
    return hourly_price_from_products(answer["PriceList"], instance_type, use)


def hourly_price_from_products(price_list: list[str], instance_type: str, use: str) -> float | None:
    """The USD price per hour of the product whose usage type is `<region code>-<kind>:<instance type>`
    (e.g. `USE1-Host:ml.m5.large`) among GetProducts' answer, its on-demand terms; None if none is listed."""
    wanted = f"-{USAGE_KINDS[use]}:{instance_type}"
    for text in price_list:
        product = json.loads(text)
        if not product["product"]["attributes"].get("usagetype", "").endswith(wanted):
            continue
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term["priceDimensions"].values():
                if dimension.get("unit", "").lower().startswith("hr") and "USD" in dimension["pricePerUnit"]:
                    return float(dimension["pricePerUnit"]["USD"])
    return None
