"""Format detection and readers on small files written here (MovieLens quirks included)."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest

from freshrec.datasets.formats import detect_format
from freshrec.errors import InvalidInput

U_ITEM = (
    "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
    "2|Amélie (2001)|01-Jan-2001||http://y|0|0|0|0|0|1|0|0|0|0|0|0|0|0|1|0|0|0|0\n"
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_movielens_files_by_name_and_by_content(tmp_path: Path) -> None:
    assert detect_format(write(tmp_path / "u.data", "196\t242\t3\t881250949\n")).name == "ml-100k"
    assert detect_format(write(tmp_path / "x.tsv", "196\t242\t3\t881250949\n")).name == "ml-100k"
    assert detect_format(write(tmp_path / "ratings.dat", "1::1193::5::978300760\n")).name == "ml-1m"
    assert detect_format(write(tmp_path / "r.txt", "1::1193::5::978300760\n")).name == "ml-1m"
    assert (
        detect_format(write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation|Comedy\n")).name == "ml-1m-items"
    )
    assert detect_format(write(tmp_path / "u.item", U_ITEM, "latin-1")).name == "ml-100k-items"
    movies = write(tmp_path / "movies.csv", "movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n")
    assert detect_format(movies).name == "ml-latest-items"
    assert detect_format(write(tmp_path / "e.csv", "user,item\na,b\n")).name == "csv"
    assert detect_format(tmp_path / "e.csv", kind="items").name == "csv-items"
    assert detect_format(write(tmp_path / "e.jsonl", '{"user_id": "a"}\n')).name == "jsonl"
    with pytest.raises(InvalidInput, match="holds events, not items"):
        detect_format(tmp_path / "u.data", kind="items")
    with pytest.raises(InvalidInput, match="no such file"):
        detect_format(tmp_path / "missing.csv")


def test_latin1_items_read_correctly(tmp_path: Path) -> None:
    fmt = detect_format(write(tmp_path / "u.item", U_ITEM, "latin-1"))
    items = [it for _, it in fmt.read(tmp_path / "u.item")]
    assert items[1].title == "Amélie (2001)"
    assert items[0].categories == ["Animation", "Children's", "Comedy"]
    assert items[1].categories == ["Comedy", "Romance"] and items[1].attributes == {"year": 2001.0}
    write(tmp_path / "movies.dat", "7::Crème (1999)::Drama\n", "latin-1")
    [(_, movie)] = list(detect_format(tmp_path / "movies.dat").read(tmp_path / "movies.dat"))
    assert movie.title == "Crème (1999)" and movie.categories == ["Drama"]


def test_compressed_inputs(tmp_path: Path) -> None:
    rows = [{"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1400000000}]
    with zipfile.ZipFile(tmp_path / "reviews.zip", "w") as z:
        z.writestr("Musical_Instruments.json", "\n".join(json.dumps(r) for r in rows))
    fmt = detect_format(tmp_path / "reviews.zip")
    [(_, e)] = list(fmt.read(tmp_path / "reviews.zip"))
    assert (e.user_id, e.item_id, e.value, e.ts, e.type) == ("A1", "B1", 5.0, 1400000000.0, "rating")
    with gzip.open(tmp_path / "events.csv.gz", "wt") as f:
        f.write("userId,movieId,rating,timestamp\n1,2,3.5,100\n")
    [(_, e)] = list(detect_format(tmp_path / "events.csv.gz").read(tmp_path / "events.csv.gz"))
    assert (e.user_id, e.item_id, e.value, e.ts) == ("1", "2", 3.5, 100.0)
