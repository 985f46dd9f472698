"""Load a source's raw rows from the Hugging Face Hub, or say in one sentence why not and what to do."""

from __future__ import annotations

from studio.errors import DataError


def load_hub_rows(hub_id: str, subset: str | None = None, split: str = "train", data_dir: str | None = None):
    """Raw rows of a hub dataset split, as an iterable of dicts."""
    import datasets

    try:
        return datasets.load_dataset(hub_id, subset, split=split, data_dir=data_dir)
    except Exception as err:  # datasets raises many types for "offline", "missing" and "gated"
        detail = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise DataError(f"could not load {hub_id} from the Hugging Face Hub ({detail}); download it "
                        "and set data.path to the local file (jsonl, jsonl.gz, json, csv or parquet in "
                        "the source's raw schema)") from None
