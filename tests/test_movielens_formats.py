"""GroupLens' own formats (ML-100K, ML-1M, ML-20M), read offline from small files written
here byte for byte in those formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recnotes.data import load_movielens, leave_one_out
from recnotes.data.movielens import read_grouplens, split_title_year

FLAGS_TOY = "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"  # Animation, Children's, Comedy
FLAGS_NONE = "1" + "|0" * 18  # unknown


def write(path: Path, text: str, encoding: str) -> None:
    path.write_bytes(text.encode(encoding))


@pytest.fixture
def ml100k_folder(tmp_path):
    write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"
          "196\t302\t4\t881250949\n196\t267\t1\t881250950\n", "ascii")
    write(tmp_path / "u.item",
          f"242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|{FLAGS_TOY}\n"
          f"302|Café au lait (1993)|01-Jan-1993||http://x|{FLAGS_NONE}\n"
          f"267|unknown||||{FLAGS_NONE}\n"
          f"1|Toy Story|01-Jan-1995||http://x|{FLAGS_TOY}\n", "latin-1")
    return tmp_path


@pytest.fixture
def ml1m_folder(tmp_path):
    write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n"
          "2::1193::4::978300760\n1::2::4::978302109\n", "ascii")
    write(tmp_path / "movies.dat",
          "2::Jumanji (1995)::Adventure|Children's|Fantasy\n"
          "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
          "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
          "29::City of Lost Children, The (Cité des enfants perdus, La) (1995)::Adventure|Sci-Fi\n",
          "latin-1")
    return tmp_path


@pytest.fixture
def ml20m_folder(tmp_path):
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n"
          "1,29,3.5,1112484676\n7,131262,4.0,1112486027\n1,11,1.0,1112484676\n", "utf-8")
    write(tmp_path / "movies.csv",
          "movieId,title,genres\n2,Jumanji (1995),Adventure|Children|Fantasy\n"
          '11,"American President, The (1995)",Comedy|Drama|Romance\n'
          "29,\"City of Lost Children, The (Cité des enfants perdus, La) (1995)\",Adventure|Drama\n"
          "131262,Innocence (2014),(no genres listed)\n"
          "99,Babylon 5 ,Sci-Fi\n", "utf-8")
    return tmp_path


def test_ml100k_format(ml100k_folder):
    data = load_movielens("ml-100k", path=ml100k_folder)
    assert (len(data), data.n_users, data.n_items) == (4, 2, 3)
    frame = data.to_frame(original_ids=True)
    assert frame.user.tolist() == [196, 186, 196, 196] and frame.item.tolist() == [242, 302, 302, 267]
    assert frame.rating.tolist() == [3.0, 3.0, 4.0, 1.0]
    meta = data.item_meta.set_index("item")
    assert meta.loc[302, "title"] == "Café au lait" and meta.loc[302, "year"] == 1993
    assert meta.loc[242, "genres"] == ("Animation", "Children's", "Comedy")
    assert meta.loc[267, "title"] == "unknown" and meta.loc[267, "year"] is pd.NA
    # equal timestamps keep the file's row order in the chronological sequence
    u196 = int(np.flatnonzero(data.user_ids == 196)[0])
    assert data.item_ids[data.sequences()[u196]].tolist() == [242, 302, 267]
    _, items = read_grouplens(ml100k_folder)  # no year in the title: the release date's year
    assert items.set_index("item").loc[1, ["title", "year"]].tolist() == ["Toy Story", 1995]


def test_ml1m_format(ml1m_folder):
    data = load_movielens("ml-1m", path=ml1m_folder)
    assert (len(data), data.n_users, data.n_items) == (4, 2, 3)  # movie 29 is never rated
    meta = data.item_meta.set_index("item")
    assert meta.loc[1193, "title"] == "One Flew Over the Cuckoo's Nest" and meta.loc[1193, "year"] == 1975
    assert meta.loc[2, "genres"] == ("Adventure", "Children's", "Fantasy")
    u1 = int(np.flatnonzero(data.user_ids == 1)[0])
    assert data.item_ids[data.sequences()[u1]].tolist() == [1193, 661, 2]
    split = leave_one_out(data, drop_short=True)
    assert split.n_users == 1 and data.item_ids[split.test].tolist() == [2]
    ratings, items = read_grouplens(ml1m_folder)
    lost = items.set_index("item").loc[29]
    assert lost.title == "City of Lost Children, The (Cité des enfants perdus, La)" and lost.year == 1995


def test_ml20m_format(ml20m_folder):
    ratings, items = read_grouplens(ml20m_folder)
    assert ratings.rating.tolist() == [3.5, 3.5, 4.0, 1.0]
    assert ratings.dtypes["timestamp"] == np.int64
    meta = items.set_index("item")
    assert meta.loc[11, "title"] == "American President, The" and meta.loc[11, "year"] == 1995
    assert meta.loc[29, "title"] == "City of Lost Children, The (Cité des enfants perdus, La)"
    assert meta.loc[131262, "genres"] == () and meta.loc[131262, "year"] == 2014
    assert meta.loc[99, "title"] == "Babylon 5" and meta.loc[99, "year"] is pd.NA
    assert meta.loc[2, "genres"] == ("Adventure", "Children", "Fantasy")
    data = load_movielens("ml-20m", path=ml20m_folder)
    assert (len(data), data.n_users, data.n_items) == (4, 2, 4)
    assert data.titles([data.item_ids.tolist().index(11)]) == ["American President, The (1995)"]


@pytest.mark.parametrize("raw, expected", [
    ("Toy Story (1995)", ("Toy Story", 1995)),
    ("City of Lost Children, The (Cité des enfants perdus, La) (1995)",
     ("City of Lost Children, The (Cité des enfants perdus, La)", 1995)),
    ("Babylon 5 ", ("Babylon 5", None)),
    ("Big Bang Theory, The (2007-)", ("Big Bang Theory, The (2007-)", None)),
])
def test_split_title_year(raw, expected):
    assert split_title_year(raw) == expected


def test_not_a_movielens_folder(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    with pytest.raises(ValueError, match="is not a MovieLens folder"):
        read_grouplens(tmp_path)


def test_a_malformed_line_is_reported_with_its_file_and_line(ml100k_folder):
    from recnotes.data.movielens import DataFormatError

    (ml100k_folder / "u.data").write_text("196\t242\t3\t881250949\n\n186\t302\tthree\t891717742\n")
    with pytest.raises(DataFormatError) as err:
        read_grouplens(ml100k_folder)
    message = str(err.value)
    assert str(ml100k_folder / "u.data") in message and "line 3" in message and "three" in message


def test_a_line_with_too_many_fields_is_reported(ml1m_folder):
    from recnotes.data.movielens import DataFormatError

    (ml1m_folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109::9\n")
    with pytest.raises(DataFormatError, match=r"ratings\.dat.*line 2"):
        read_grouplens(ml1m_folder)


def test_a_fractional_user_id_is_reported(ml100k_folder):
    from recnotes.data.movielens import DataFormatError

    (ml100k_folder / "u.data").write_text("196\t242\t3\t881250949\n1.5\t302\t3\t891717742\n")
    with pytest.raises(DataFormatError, match="line 2.*'user'"):
        read_grouplens(ml100k_folder)
