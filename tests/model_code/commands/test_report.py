from model_code.commands.report import metrics_table


def test_metrics_table_rows_and_columns():
    table = metrics_table(
        {
            "pop": {"recall@1": 0.001, "mrr@1": 0.001, "recall@20": 0.0123, "mrr@20": 0.00456},
            "item-knn": {"recall@1": 0.1, "mrr@1": 0.1, "recall@20": 0.5, "mrr@20": 0.25, "seconds": 3},
        }
    )
    lines = table.splitlines()
    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == [
        "model",
        "Recall@1",
        "MRR@1",
        "Recall@20",
        "MRR@20",
    ]
    assert [cell.strip() for cell in lines[2].strip("|").split("|")] == ["pop", "0.0010", "0.0010", "0.0123", "0.0046"]
    assert [cell.strip() for cell in lines[3].strip("|").split("|")] == [
        "item-knn",
        "0.1000",
        "0.1000",
        "0.5000",
        "0.2500",
    ]
    assert len({len(line) for line in lines}) == 1


def test_missing_metric_shows_a_dash():
    table = metrics_table({"a": {"recall@5": 0.5, "mrr@5": 0.1}, "b": {"recall@5": 0.25}})
    assert table.splitlines()[-1].split("|")[3].strip() == "-"
