"""A learned model on a sample of the real X Education leads (shared/datasets), through import and the API."""

import math
from pathlib import Path

import httpx
import pytest

from bench.leads_eval import LEAKY, features_of, find_datasets, import_csv, read_rows, to_csv, train

DATASETS = find_datasets(Path(__file__))


async def test_learned_model_on_a_sample_of_real_leads(client: httpx.AsyncClient) -> None:
    if DATASETS is None:
        pytest.skip("shared/datasets/leads_x_education.csv is not beside the repository")
    rows = read_rows(DATASETS / "leads_x_education.csv")[::4]  # 2310 rows, every fourth of the file
    job = await import_csv(client, to_csv(rows, with_outcome=True), name="sample.csv")
    assert (job["imported"], job["rejected"]) == (len(rows), 0)
    features = await features_of(client)
    assert not {"tags", "lead_quality", "last_activity"} & set(features)  # leaky columns are not imported
    assert len(LEAKY) == 9
    model = await train(client, features)
    metrics = model["metrics"]
    assert metrics["train_size"] + metrics["holdout_size"] == len(rows)
    assert metrics["roc_auc"] > 0.75, metrics
    assert metrics["log_loss"] < 0.55

    converted = next(r for r in rows if r["Converted"] == "1" and int(r["Total Time Spent on Website"] or 0) > 1000)
    element = (
        await client.post(
            "/entity-types/lead/elements/search",
            json={"filter": {"field": "title", "op": "eq", "value": converted["Prospect ID"]}},
        )
    ).json()["items"][0]
    scored = (await client.post(f"/elements/{element['id']}/score", json={"model_id": model["id"]})).json()
    logit = math.log(scored["probability"] / (1 - scored["probability"]))
    assert math.isclose(scored["baseline"] + sum(e["contribution"] for e in scored["explanation"]), logit, abs_tol=1e-4)
    by_feature = {e["feature"]: e for e in scored["explanation"]}
    assert set(by_feature) == set(features)
    # Time on the website is the strongest known signal in this data set: a long visit pushes the score up.
    assert by_feature["total_time_spent_on_website"]["contribution"] > 0
