"""producer.seen.SeenSet: exact dedupe for one job, in batches, carried across invocations."""

from __future__ import annotations

from pathlib import Path

from producer.seen import SeenSet


def test_a_key_is_new_only_the_first_time_within_and_across_batches(tmp_path: Path) -> None:
    seen = SeenSet(tmp_path / "seen.sqlite")
    assert seen.add_many(["a", "b", "a", "c", "b"]) == [True, True, False, True, False]
    assert seen.add_many(["c", "d", "d", "a"]) == [False, True, False, False]
    assert seen.add_many([]) == []
    seen.close()


def test_batches_larger_than_one_statement_keep_file_order(tmp_path: Path) -> None:
    seen = SeenSet(tmp_path / "seen.sqlite")
    keys = [f"user{n % 1500:04d}" for n in range(3000)]  # each key twice, 1,500 apart
    assert seen.add_many(keys) == [True] * 1500 + [False] * 1500
    seen.close()


def test_the_file_carries_the_keys_to_the_next_invocation(tmp_path: Path) -> None:
    first = SeenSet(tmp_path / "seen.sqlite")
    first.add_many(["alice", "bob"])
    first.save()
    first.close()
    resumed = SeenSet(tmp_path / "seen.sqlite")
    assert resumed.add_many(["bob", "carol"]) == [False, True]
    resumed.close()
