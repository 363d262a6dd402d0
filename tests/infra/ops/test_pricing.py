"""`infra.ops.pricing`: the hourly price read from a Price List API answer (moto has no Price List API, so the
answer is a document shaped as GetProducts returns it)."""
import json

from infra.ops.pricing import hourly_price_from_products


def product(usagetype: str, usd: str, unit: str = "Hrs") -> str:
    """One GetProducts PriceList entry, shaped as the Price List API returns it (a JSON string)."""
    return json.dumps(
        {
            "product": {
                "productFamily": "ML Instance",
                "attributes": {"usagetype": usagetype, "instanceName": "ml.m5.large"},
            },
            "terms": {
                "OnDemand": {
                    "SKU.JRTCKXETXF": {
                        "priceDimensions": {
                            "SKU.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": unit,
                                "pricePerUnit": {"USD": usd},
                                "description": "$0.115 per hour",
                            }
                        }
                    }
                }
            },
        }
    )


def test_the_hourly_price_is_the_on_demand_price_of_the_uses_product():
    listed = [product("USE1-Tsform:ml.m5.large", "0.1150000000"), product("USE1-Host:ml.m5.large", "0.1150000000"),
              product("USE1-Train:ml.m5.large", "0.1150000000"), product("USE1-Host:ml.m5.xlarge", "0.2300000000")]
    assert hourly_price_from_products(listed, "ml.m5.xlarge", "hosting") == 0.23
    assert hourly_price_from_products(listed, "ml.m5.large", "training") == 0.115
    assert hourly_price_from_products(listed, "ml.c5.large", "hosting") is None
    assert hourly_price_from_products([product("USE1-Host:ml.c5.large", "7", unit="GB")], "ml.c5.large",
                                            "hosting") is None
