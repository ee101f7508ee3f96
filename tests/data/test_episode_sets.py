"""EpisodeSet files: format read back by hand, round trips, and every damaged-file error."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from metriclab.data import EpisodeSet, LabeledImages
from metriclab.data.episode_io import safe_join
from tests.helpers import tiny_images


def _grouped() -> LabeledImages:
    base = tiny_images(num_classes=6, per_class=5)
    return LabeledImages(
        images=base.images,
        labels=base.labels,
        class_names=base.class_names,
        item_ids=tuple(
            f"alpha/{c}/{i}.png" for c, i in zip(base.labels.tolist(), range(30), strict=True)
        ),
        groups=torch.tensor([0, 0, 0, 1, 1, 1]),
        group_names=("Latin", "Greek"),
        description="grouped tiny",
    )


def _save(tmp_path: Path, episodes: EpisodeSet, name: str = "set.jsonl") -> Path:
    path = tmp_path / name
    episodes.save(path)
    return path


def _assert_same(a: EpisodeSet, b: EpisodeSet) -> None:
    for x, y in ((a.classes, b.classes), (a.support, b.support), (a.query, b.query)):
        np.testing.assert_array_equal(x, y)
    assert a.meta == b.meta


def test_round_trip_and_the_file_read_by_hand(tmp_path: Path, tiny: LabeledImages) -> None:
    episodes = EpisodeSet.sample(tiny, n_way=3, k_shot=2, n_query=2, episodes=7, seed=1)
    path = _save(tmp_path, episodes)
    _assert_same(EpisodeSet.load(path, data=tiny), episodes)
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "metriclab.episodes" and header["version"] == 1
    assert (header["episodes"], header["n_way"], header["k_shot"], header["n_query"]) == (
        7,
        3,
        2,
        2,
    )
    assert header["meta"]["seed"] == 1 and header["meta"]["data"] == "tiny"
    items = header["items"]
    assert items == sorted(set(episodes.support.ravel()) | set(episodes.query.ravel()))
    digest = hashlib.sha256(json.dumps(items, separators=(",", ":")).encode()).hexdigest()
    assert header["fingerprint"] == f"sha256:{digest}" == episodes.fingerprint
    assert len(lines) == 8
    lines_digest = hashlib.sha256("\n".join(lines[1:]).encode()).hexdigest()
    assert header["episodes_sha256"] == lines_digest == episodes.episodes_sha256
    for e, line in enumerate(lines[1:]):
        classes, support, query = json.loads(line)
        assert [header["classes"][c] for c in classes] == episodes.classes[e].tolist()
        assert [items[i] for i in support] == episodes.support[e].ravel().tolist()
        assert [items[i] for i in query] == episodes.query[e].ravel().tolist()


def test_published_size_is_well_under_a_megabyte(tmp_path: Path, digit_data: LabeledImages) -> None:
    _train, test = digit_data.split_classes(0.5, seed=0)
    episodes = EpisodeSet.sample(test, n_way=5, k_shot=1, n_query=15, episodes=1000, seed=0)
    path = _save(tmp_path, episodes)
    assert path.stat().st_size < 600_000
    _assert_same(EpisodeSet.load(path, data=test), episodes)


def test_within_group_sets(tmp_path: Path) -> None:
    data = _grouped()
    episodes = EpisodeSet.sample(data, 3, 1, 2, episodes=20, seed=0, within_group=True)
    groups = {name: int(data.groups[i]) for i, name in enumerate(data.class_names)}
    for row in episodes.classes:
        assert len({groups[c] for c in row}) == 1
    assert episodes.meta["within_group"] is True
    _assert_same(EpisodeSet.load(_save(tmp_path, episodes), data=data), episodes)
    with pytest.raises(ValueError, match="largest group, 'Latin', has 3"):
        EpisodeSet.sample(data, 4, 1, 2, episodes=2, seed=0, within_group=True)
    with pytest.raises(ValueError, match="tiny has none"):
        EpisodeSet.sample(tiny_images(), 2, 1, 1, 2, seed=0, within_group=True)


def test_truncated_files_name_the_file_and_line(tmp_path: Path, tiny: LabeledImages) -> None:
    path = _save(tmp_path, EpisodeSet.sample(tiny, 2, 1, 1, episodes=5, seed=0))
    text = path.read_text()
    path.write_text("".join(text.splitlines(keepends=True)[:4]))
    with pytest.raises(
        ValueError,
        match=r"set.jsonl is truncated: it ends at line 4, but its header promises 5 episodes",
    ):
        EpisodeSet.load(path)
    path.write_text(text[: len(text) - 7])
    with pytest.raises(ValueError, match=r"set.jsonl line 6 is not a complete episode"):
        EpisodeSet.load(path)
    path.write_text(text + text.splitlines(keepends=True)[-1])
    with pytest.raises(ValueError, match="line 7 is past the 5 episodes"):
        EpisodeSet.load(path)
    path.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        EpisodeSet.load(path)


def test_edited_files_fail_their_fingerprints(tmp_path: Path, tiny: LabeledImages) -> None:
    path = _save(tmp_path, EpisodeSet.sample(tiny, 2, 1, 1, episodes=5, seed=0))
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    header["items"][0] = "tiny:999"
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match="item fingerprint does not match"):
        EpisodeSet.load(path)
    episode = json.loads(lines[1])
    episode[1][0] = (episode[1][0] + 1) % len(header["items"])
    path.write_text(
        "\n".join([lines[0], json.dumps(episode, separators=(",", ":")), *lines[2:]]) + "\n"
    )
    with pytest.raises(ValueError, match="do not match the header's checksum"):
        EpisodeSet.load(path)
    episode[1][0] = 10_000
    path.write_text("\n".join([lines[0], json.dumps(episode), *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match="line 2 is not an episode"):
        EpisodeSet.load(path)


def test_not_an_episode_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.jsonl does not exist"):
        EpisodeSet.load(tmp_path / "nothing.jsonl")
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": 1}\n')
    with pytest.raises(ValueError, match="line 1 is not a metriclab episode header"):
        EpisodeSet.load(other)
    other.write_text('{"format": "metriclab.episodes", "version": 9}\n')
    with pytest.raises(ValueError, match="format version 9"):
        EpisodeSet.load(other)


def test_missing_and_misclassified_items_are_named(tmp_path: Path, tiny: LabeledImages) -> None:
    episodes = EpisodeSet.sample(tiny, 2, 1, 1, episodes=5, seed=0)
    path = _save(tmp_path, episodes)
    first = episodes.item_ids[0]
    keep = [i for i, item in enumerate(tiny.item_ids) if item != first]
    with pytest.raises(ValueError, match=rf"set.jsonl: episode item '{first}' is not in the data"):
        EpisodeSet.load(path, data=tiny.subset(np.array(keep)))
    relabelled = LabeledImages(
        images=tiny.images,
        labels=tiny.labels.flip(0),
        class_names=tiny.class_names,
        item_ids=tiny.item_ids,
        description="tiny",
    )
    with pytest.raises(ValueError, match="in the data but"):
        EpisodeSet.load(path, data=relabelled)


@pytest.mark.parametrize(
    "bad", ["../secret.png", "/etc/passwd", "a/../../b.png", "C:\\x.png", "..\\x"]
)
def test_ids_that_escape_their_root_are_refused(tmp_path: Path, bad: str) -> None:
    episodes = EpisodeSet(
        classes=np.array([["a", "b"]]),
        support=np.array([[["a/1.png"], [bad]]]),
        query=np.array([[["a/2.png"], ["b/2.png"]]]),
    )
    with pytest.raises(ValueError, match="escapes its root"):
        episodes.save(tmp_path / "bad.jsonl")
    assert not list(tmp_path.iterdir())
    # A crafted file with a consistent fingerprint is refused on load too.
    good = EpisodeSet(episodes.classes, np.array([[["a/1.png"], ["b/1.png"]]]), episodes.query)
    path = _save(tmp_path, good)
    text = path.read_text().replace('"b/1.png"', json.dumps(bad))
    header = json.loads(text.splitlines()[0])
    digest = hashlib.sha256(json.dumps(header["items"], separators=(",", ":")).encode()).hexdigest()
    path.write_text(text.replace(header["fingerprint"], f"sha256:{digest}"))
    with pytest.raises(ValueError, match="escapes its root"):
        EpisodeSet.load(path)


def test_safe_join_refuses_symlinks_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "inside.png").write_bytes(b"x")
    (root / "out").symlink_to(tmp_path)
    assert safe_join(root, "inside.png") == root / "inside.png"
    with pytest.raises(ValueError, match="leads outside"):
        safe_join(root, "out/other.png")


def test_failed_save_leaves_the_old_file(tmp_path: Path, tiny: LabeledImages) -> None:
    episodes = EpisodeSet.sample(tiny, 2, 1, 1, episodes=3, seed=0)
    path = _save(tmp_path, episodes)
    before = path.read_bytes()
    broken = EpisodeSet(episodes.classes, episodes.support, episodes.query, {"x": object()})
    with pytest.raises(ValueError, match="JSON values"):
        broken.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["set.jsonl"]


def test_summary(tiny: LabeledImages) -> None:
    episodes = EpisodeSet.sample(tiny, 3, 1, 2, episodes=40, seed=0)
    text = episodes.summary("demo.jsonl")
    assert text.startswith("demo.jsonl: 40 episodes, 3-way 1-shot, 2 queries per class")
    assert "data: tiny" in text and "seed=0" in text and episodes.fingerprint in text
    counts = dict(zip(*np.unique(episodes.classes, return_counts=True), strict=True))
    assert f"each in {min(counts.values())}–{max(counts.values())} episodes" in text


@pytest.mark.parametrize("k_shot", [1, 5])
def test_published_digit_sets_are_reproduced(digit_data: LabeledImages, k_shot: int) -> None:
    # Guards "same seed, same episodes everywhere": the files are checked wherever the suite runs.
    path = Path(__file__).parents[2] / "episodes" / f"digits-5way-{k_shot}shot.jsonl"
    _train, test = digit_data.split_classes(0.5, seed=0)
    published = EpisodeSet.load(path, data=test)
    again = EpisodeSet.sample(test, 5, k_shot, 15, episodes=1000, seed=0)
    np.testing.assert_array_equal(published.support, again.support)
    np.testing.assert_array_equal(published.query, again.query)
    np.testing.assert_array_equal(published.classes, again.classes)
