"""Write the small datasets bundled with the studio, each in its source's raw schema.

    python scripts/make_samples.py        # rewrites studio/data/samples/<source>.jsonl

Each module in scripts/sample_gen/ generates one source's rows from templates and word lists written for
this project (towns, people and facts are made up), with a fixed seed, so the files are reproducible.
Nothing is copied from the real datasets; only their column layout is followed.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "studio" / "data" / "samples"


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    sys.path.insert(0, str(HERE))
    import sample_gen

    for info in pkgutil.iter_modules(sample_gen.__path__):
        if info.name == "words":
            continue
        module = importlib.import_module(f"sample_gen.{info.name}")
        rows = module.rows(random.Random(module.SEED))
        write_jsonl(OUT / f"{module.SOURCE}.jsonl", rows)
        print(f"{module.SOURCE}: {len(rows)} rows")


if __name__ == "__main__":
    main()
