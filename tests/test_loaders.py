"""Benchmark-file loaders, on small files in each format written by the test."""

from __future__ import annotations

import base64
import csv
import json

import pytest

from kimi_env import InvalidArgumentError, UnknownNameError, load_tasks
from kimi_env.loaders import load_benchmark
from kimi_env.tasks import save_tasks, tasks_to_dataset


def _enc(text: str, key: str) -> str:
    kb = key.encode()
    return base64.b64encode(bytes(b ^ kb[i % len(kb)] for i, b in enumerate(text.encode()))).decode()


def test_hle_jsonl_skips_image_rows(tmp_path):
    p = tmp_path / "hle.jsonl"
    rows = [{"id": "a1", "question": "Q1?", "answer": "A1", "answer_type": "exactMatch", "image": ""},
            {"id": "a2", "question": "Q2?", "answer": "A2", "answer_type": "exactMatch", "image": "data:image/png"}]
    p.write_text("\n".join(json.dumps(r) for r in rows))
    tasks = load_benchmark(p, "hle")
    assert [(t.id, t.question, t.answers) for t in tasks] == [("a1", "Q1?", ("A1",))]


def test_frames_tsv_keeps_links(tmp_path):
    p = tmp_path / "frames.tsv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t")
        w.writerow(["", "Prompt", "Answer", "wikipedia_link_1", "wikipedia_link_2", "reasoning_types"])
        w.writerow(["0", "Who?", "Ada", "https://en.wikipedia.org/wiki/Ada", "", "Multiple constraints"])
    (task,) = load_benchmark(p, "frames")
    assert task.answer == "Ada" and task.metadata["evidence_urls"] == ["https://en.wikipedia.org/wiki/Ada"]


def test_simpleqa_csv(tmp_path):
    p = tmp_path / "simple_qa_test_set.csv"
    p.write_text('metadata,problem,answer\n"{\'topic\': \'Art\'}","Who painted X?","Y Z"\n')
    (task,) = load_benchmark(p, "simpleqa")
    assert task.question == "Who painted X?" and task.answer == "Y Z"


def test_xbench_csv_is_decrypted_with_its_canary(tmp_path):
    key = "canary-guid-1234"
    p = tmp_path / "DeepSearch.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "prompt", "answer", "canary"])
        w.writerow(["1", _enc("哪一年？", key), _enc("1999", key), key])
    (task,) = load_benchmark(p, "xbench")
    assert task.question == "哪一年？" and task.answer == "1999"


def test_generic_qa_and_errors(tmp_path):
    p = tmp_path / "qa.json"
    p.write_text(json.dumps([{"question": "2+2?", "answers": ["4", "four"], "answer_type": "number"}]))
    (task,) = load_benchmark(p)
    assert task.answers == ("4", "four") and task.answer_type == "number"
    with pytest.raises(UnknownNameError, match="Did you mean 'frames'"):
        load_benchmark(p, "frame")
    with pytest.raises(InvalidArgumentError, match="expected a .csv"):
        load_benchmark(tmp_path / "x.txt" if (tmp_path / "x.txt").write_text("x") else p)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a", "answer": "b"}\n{"question": "no answer"}\n')
    with pytest.raises(InvalidArgumentError, match=r"bad.jsonl:2: .*no 'answers'"):
        load_tasks(bad)


def test_tasks_roundtrip_through_jsonl_and_dataset(tmp_path):
    tasks = load_tasks([{"id": "t", "question": "Q?", "answers": ["a"], "metadata": {"hops": 2, "_plan": [1]}}])
    save_tasks(tasks, tmp_path / "t.jsonl")
    assert load_tasks(tmp_path / "t.jsonl") == tasks
    assert "_plan" not in tasks[0].public()["metadata"] and "answers" not in tasks[0].public()
    ds = tasks_to_dataset(tasks)
    assert load_tasks(ds) == tasks


def test_non_object_rows_are_named_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("123\n")
    with pytest.raises(InvalidArgumentError, match=r"bad.jsonl:1: .*expected a JSON object, got int"):
        load_tasks(bad)
    with pytest.raises(InvalidArgumentError, match="task 0: expected a dict"):
        load_tasks([["question", "answer"]])


def test_xbench_plain_text_fields_are_kept(tmp_path):
    p = tmp_path / "DeepSearch.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "prompt", "answer", "canary"])
        w.writerow(["1", "Which year?", "2019", "some-canary"])
    (task,) = load_benchmark(p, "xbench")
    assert task.question == "Which year?" and task.answer == "2019"


def test_xbench_text_that_is_not_strict_base64_is_not_decrypted(tmp_path):
    # Lenient base64 would drop the "?" and decode "QUJD" to "ABC" (with a NUL canary, XOR changes nothing).
    p = tmp_path / "xbench.jsonl"
    p.write_text(json.dumps({"id": 1, "prompt": "QUJD?", "answer": "QUJD", "canary": "\u0000"}) + "\n")
    (task,) = load_benchmark(p, "xbench")
    assert task.question == "QUJD?" and task.answer == "ABC"
