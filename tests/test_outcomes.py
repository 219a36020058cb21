"""Tests for adaptive_router.outcomes: the JSONL outcome format."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from adaptive_router.errors import ConfigError, OutcomeFormatError
from adaptive_router.outcomes import OutcomeRecord, OutcomeSet, ProcedureOutcome, render_prompt


def _write(tmp_path, lines):
    path = tmp_path / "o.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def _rec(i, outcomes, **extra):
    return {"id": f"q{i}", "prompt": f"{i} + 1 =", "outcomes": outcomes, **extra}


def test_round_trip_keeps_everything(tmp_path):
    lines = [
        _rec(
            0,
            {
                "m": [
                    {"reward": 1.0, "score": 0.3, "cost": 2.0, "tokens": 5, "text": "1"},
                    {"reward": 0.0, "score": -1.0, "cost": 1.0, "tokens": 7, "text": "x"},
                ]
            },
            answer="1",
        ),
        {
            "id": "q1",
            "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            "outcomes": {"m": [{"reward": 0.25, "score": 0.1, "cost": 1.5, "tokens": 3}]},
            "cost": {"m": 3.0},
        },
    ]
    s = OutcomeSet.read_jsonl(_write(tmp_path, lines))
    out = tmp_path / "back.jsonl"
    s.write_jsonl(out)
    again = OutcomeSet.read_jsonl(out)
    assert again == s
    assert [json.loads(x) for x in out.read_text().splitlines()] == lines
    assert s[0].meta == {"answer": "1"}
    assert s[0].outcomes["m"].extras == ({"text": "1"}, {"text": "x"})


def test_compact_form_round_trip_and_counts(tmp_path):
    lines = [_rec(i, {"cheap": {"successes": i, "samples": 4}, "big": [{"reward": 1.0}]}) for i in range(5)]
    s = OutcomeSet.read_jsonl(_write(tmp_path, lines))
    assert s.procedures == ("cheap", "big")
    c, n = s.success_counts("cheap")
    assert c.tolist() == [0, 1, 2, 3, 4] and n.tolist() == [4] * 5
    out = tmp_path / "b.jsonl"
    s.write_jsonl(out)
    assert [json.loads(x) for x in out.read_text().splitlines()] == lines
    assert s.rewards("cheap")[3].tolist() == [1, 1, 1, 0]


def test_success_counts_threshold_and_ragged_rewards(tmp_path):
    lines = [
        _rec(0, {"m": [{"reward": 0.5}, {"reward": 0.49}, {"reward": 0.9}]}),
        _rec(1, {"m": [{"reward": 0.0}]}),
    ]
    s = OutcomeSet.read_jsonl(_write(tmp_path, lines))
    c, n = s.success_counts("m")
    assert c.tolist() == [2, 0] and n.tolist() == [3, 1]
    r = s.rewards("m")
    assert r.shape == (2, 3) and np.isnan(r[1, 1:]).all()
    assert not s.is_binary("m")
    np.testing.assert_allclose(s.mean_rewards("m"), [(0.5 + 0.49 + 0.9) / 3, 0.0])


def test_procedure_costs_precedence(tmp_path):
    lines = [
        _rec(
            0,
            {"a": [{"reward": 1, "cost": 2.0}, {"reward": 0, "cost": 4.0}], "b": [{"reward": 1}]},
            cost={"b": 10.0},
        ),
        _rec(1, {"a": [{"reward": 1, "cost": 1.0}], "b": [{"reward": 1}]}),
    ]
    s = OutcomeSet.read_jsonl(_write(tmp_path, lines))
    assert s.procedure_costs == {"a": pytest.approx(2.0), "b": pytest.approx(5.5)}


def test_token_counts_round_trip_and_price_the_calls_a_recorded_cost_wins(tmp_path):
    from adaptive_router.prices import PriceTable

    tok = {"input_tokens": 1000, "output_tokens": 500}
    lines = [
        _rec(0, {"a": [{"reward": 1, **tok}, {"reward": 0, "input_tokens": 3000, "output_tokens": 0}],
                 "b": [{"reward": 1, **tok}]}),
        _rec(1, {"a": [{"reward": 1, **tok, "cost": 0.5}], "b": [{"reward": 0, **tok}]}, cost={"b": 2.0}),
    ]
    path = _write(tmp_path, lines)
    s = OutcomeSet.read_jsonl(path)
    assert s[0].outcomes["a"].input_tokens == (1000, 3000) and s[0].outcomes["a"].output_tokens == (500, 0)
    s.write_jsonl(tmp_path / "back.jsonl")
    assert [json.loads(x) for x in (tmp_path / "back.jsonl").read_text().splitlines()] == lines
    prices = PriceTable({"a": (1.0, 4.0), "b": (10.0, 20.0)})  # dollars per million tokens
    costs = s.query_costs(prices)
    # a on q0: (1000 x 1 + 500 x 4) / 1e6 = 0.003 and 3000 x 1 / 1e6 = 0.003; on q1 its recorded 0.5
    np.testing.assert_allclose(costs["a"], [0.003, 0.5])
    np.testing.assert_allclose(costs["b"], [0.02, 2.0])  # 1000 x 10 + 500 x 20; the record's cost wins
    assert s.mean_costs(prices) == {"a": pytest.approx(0.2515), "b": pytest.approx(1.01)}
    assert s.procedure_costs == {"a": pytest.approx(0.75), "b": pytest.approx(1.5)}  # unpriced: 1 per call


def test_pricing_names_the_query_and_the_missing_price():
    from adaptive_router.prices import PriceTable

    s = OutcomeSet.from_dicts([_rec(0, {"m": [{"reward": 1, "tokens": 12}]})])
    with pytest.raises(ConfigError, match=r"query 'q0', procedure 'm': no recorded 'cost' and only 'tokens'"):
        s.query_costs(PriceTable({"m": (1.0, 1.0)}))
    s = OutcomeSet.from_dicts([_rec(0, {"m": [{"reward": 1, "input_tokens": 1, "output_tokens": 2}]})])
    missing = r"no price for procedure 'm' \(it has \['other'\]\); add \[models.m\]"
    with pytest.raises(ConfigError, match=missing):
        s.query_costs(PriceTable({"other": (1.0, 1.0)}))


def test_texts_render_chat_prompts():
    assert render_prompt("x") == "x"
    assert render_prompt((("user", "only"),)) == "only"
    assert render_prompt((("system", "s"), ("user", "u"))) == "system: s\nuser: u"
    s = OutcomeSet.from_dicts([_rec(0, {"m": {"successes": 1, "samples": 1}})])
    assert s.texts() == ["0 + 1 ="]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", r"line 2: invalid JSON"),
        ([1, 2], r"line 2: a record must be a JSON object"),
        ({"id": "x", "prompt": "p"}, r"line 2: missing field\(s\) \['outcomes'\]"),
        ({"id": "", "prompt": "p", "outcomes": {"m": [{"reward": 1}]}}, r"'id' must be a non-empty string"),
        ({"id": "x", "prompt": 3, "outcomes": {"m": [{"reward": 1}]}}, r"'prompt' must be a string"),
        (
            {"id": "x", "prompt": [{"role": "user"}], "outcomes": {"m": [{"reward": 1}]}},
            r"prompt\[0\] must be",
        ),
        ({"id": "x", "prompt": "p", "outcomes": {}}, r"'outcomes' must be a non-empty object"),
        ({"id": "x", "prompt": "p", "outcomes": {"m": []}}, r"outcomes\.m must be a non-empty list"),
        ({"id": "x", "prompt": "p", "outcomes": {"m": [{"score": 1}]}}, r"outcomes\.m\[0\] has no 'reward'"),
        (
            {"id": "x", "prompt": "p", "outcomes": {"m": [{"reward": "yes"}]}},
            r"outcomes\.m\[0\]\.reward must be a finite number, got 'yes'",
        ),
        ({"id": "x", "prompt": "p", "outcomes": {"m": [{"reward": float("nan")}]}}, r"finite number"),
        (
            {"id": "x", "prompt": "p", "outcomes": {"m": [{"reward": 1, "score": 1}, {"reward": 0}]}},
            r"'score' is given for 1 of 2 samples",
        ),
        (
            {"id": "x", "prompt": "p", "outcomes": {"m": [{"reward": 1, "tokens": -1}]}},
            r"tokens must be a non-negative integer",
        ),
        (
            {"id": "x", "prompt": "p", "outcomes": {"m": [{"reward": 1, "input_tokens": 1.5}]}},
            r"outcomes\.m\[0\]\.input_tokens must be a non-negative integer, got 1\.5",
        ),
        (
            {"id": "x", "prompt": "p", "outcomes": {"m": [{"reward": 1, "output_tokens": 3}, {"reward": 0}]}},
            r"'output_tokens' is given for 1 of 2 samples",
        ),
        (
            {"id": "x", "prompt": "p", "outcomes": {"m": [{"reward": 1, "cost": -0.1}]}},
            r"outcomes\.m\[0\]\.cost must be >= 0",
        ),
        (
            {"id": "x", "prompt": "p", "outcomes": {"m": {"successes": 5, "samples": 4}}},
            r"0 <= successes <= samples",
        ),
        ({"id": "x", "prompt": "p", "outcomes": {"m": {"successes": 1}}}, r"exactly \{'successes': int"),
        (
            {"id": "x", "prompt": "p", "outcomes": {"m": {"successes": 1.5, "samples": 2}}},
            r"must be integers",
        ),
        (
            {"id": "x", "prompt": "p", "outcomes": {"m": [{"reward": 1}]}, "cost": {"z": 1}},
            r"'cost' names procedures \['z'\]",
        ),
        ({"id": "x", "prompt": "p", "outcomes": {"m": [{"reward": 1}]}, "cost": {"m": -1}}, r"must be >= 0"),
    ],
)
def test_bad_lines_name_field_and_line(tmp_path, line, match):
    good = _rec(0, {"m": [{"reward": 1.0}]})
    with pytest.raises(OutcomeFormatError, match=match) as info:
        OutcomeSet.read_jsonl(_write(tmp_path, [good, line]))
    assert info.value.line == 2


def test_all_bad_lines_are_reported(tmp_path):
    good = _rec(0, {"m": [{"reward": 1.0}]})
    lines = [good, "{", _rec(1, {"m": []}), "", _rec(2, {"m": [{"reward": 1}]}), "]"]
    with pytest.raises(OutcomeFormatError, match=r"line 2: .*and 2 more bad line\(s\): 3, 6") as info:
        OutcomeSet.read_jsonl(_write(tmp_path, lines))
    assert info.value.line == 2


def test_set_level_checks(tmp_path):
    a = _rec(0, {"m": [{"reward": 1.0}]})
    with pytest.raises(OutcomeFormatError, match=r"line 2: duplicate id 'q0'"):
        OutcomeSet.read_jsonl(_write(tmp_path, [a, a]))
    b = _rec(1, {"other": [{"reward": 1.0}]})
    with pytest.raises(OutcomeFormatError, match=r"line 2: record 'q1' has procedures \['other'\]"):
        OutcomeSet.read_jsonl(_write(tmp_path, [a, b]))
    c = _rec(1, {"m": [{"reward": 1.0, "score": 0.2}]})
    with pytest.raises(OutcomeFormatError, match=r"line 2: procedure 'm': reranker 'score'"):
        OutcomeSet.read_jsonl(_write(tmp_path, [a, c]))
    with pytest.raises(ConfigError, match="does not exist"):
        OutcomeSet.read_jsonl(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ConfigError, match="holds no records"):
        OutcomeSet.read_jsonl(tmp_path / "empty.jsonl")
    with pytest.raises(ConfigError, match=r"unknown procedure 'z'; this outcome set has \['m'\]"):
        OutcomeSet.from_dicts([a]).success_counts("z")


def _pass_at_k(c, n, k):
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _best_of_k(rewards, k):
    return float(np.mean([max(s) for s in itertools.combinations(rewards, k)]))


def _reranked(rewards, scores, k):
    vals = []
    for idx in itertools.combinations(range(len(rewards)), k):
        best = max(idx, key=lambda i: scores[i])
        vals.append(rewards[best])
    return float(np.mean(vals))


def test_true_curves_binary_is_pass_at_k():
    objs = [_rec(i, {"m": {"successes": c, "samples": 6}}) for i, c in enumerate([0, 1, 3, 6])]
    curves = OutcomeSet.from_dicts(objs).true_curves(4)["m"]
    expected = [[_pass_at_k(c, 6, k) for k in range(1, 5)] for c in [0, 1, 3, 6]]
    np.testing.assert_allclose(curves, expected, atol=1e-9)


def test_true_curves_continuous_and_reranked():
    rng = np.random.default_rng(0)
    rewards = rng.uniform(size=(3, 5)).round(3)
    scores = rng.normal(size=(3, 5)).round(3)
    plain = OutcomeSet.from_dicts(
        [_rec(i, {"m": [{"reward": float(r)} for r in row]}) for i, row in enumerate(rewards)]
    )
    np.testing.assert_allclose(
        plain.true_curves(3)["m"], [[_best_of_k(row, k) for k in (1, 2, 3)] for row in rewards], atol=1e-9
    )
    ranked = OutcomeSet.from_dicts(
        [
            _rec(i, {"m": [{"reward": float(r), "score": float(s)} for r, s in zip(rw, sc, strict=True)]})
            for i, (rw, sc) in enumerate(zip(rewards, scores, strict=True))
        ]
    )
    np.testing.assert_allclose(
        ranked.true_curves(3)["m"],
        [[_reranked(rw, sc, k) for k in (1, 2, 3)] for rw, sc in zip(rewards, scores, strict=True)],
        atol=1e-9,
    )
    with pytest.raises(ConfigError, match="max_k must be a positive integer"):
        plain.true_curves(0)


def test_split_is_stable_disjoint_and_sized():
    objs = [_rec(i, {"m": {"successes": i % 3, "samples": 3}}) for i in range(400)]
    s = OutcomeSet.from_dicts(objs)
    train, test = s.split(0.25, seed=1)
    assert len(train) + len(test) == 400
    assert set(train.ids).isdisjoint(test.ids)
    assert 0.18 < len(test) / 400 < 0.32
    _, test2 = OutcomeSet.from_dicts(objs[::-1]).split(0.25, seed=1)
    assert set(test2.ids) == set(test.ids)
    assert set(s.split(0.25, seed=2)[1].ids) != set(test.ids)
    with pytest.raises(ConfigError, match=r"test_fraction must be in \(0, 1\)"):
        s.split(1.0)
    with pytest.raises(ConfigError, match="left 1 train / 0 test"):
        s[:1].split(0.001)


def test_sequence_protocol_and_direct_construction():
    recs = [
        OutcomeRecord(id=str(i), prompt="p", outcomes={"m": ProcedureOutcome(rewards=(1.0, 0.0))})
        for i in range(3)
    ]
    s = OutcomeSet(recs)
    assert len(s) == 3 and s[1].id == "1" and isinstance(s[1:], OutcomeSet) and len(s[1:]) == 2
    assert s.subset([2, 0]).ids == ["2", "0"]
    with pytest.raises(OutcomeFormatError, match="at least one sample"):
        ProcedureOutcome()


# -- per-sample answers ----------------------------------------------------------------------------------


def test_answers_round_trip_and_codes(tmp_path):
    lines = [
        _rec(0, {"m": [{"reward": 1.0, "answer": "4"}, {"reward": 0.0, "answer": "5", "text": "five"},
                       {"reward": 1.0, "answer": "4"}]}),
        _rec(1, {"m": [{"reward": 0.0}, {"reward": 1.0, "answer": "x"}]}),
        _rec(2, {"m": {"successes": 1, "samples": 2}}),
    ]  # fmt: skip
    s = OutcomeSet.read_jsonl(_write(tmp_path, lines))
    assert s[0].outcomes["m"].answers == ("4", "5", "4")
    assert s[1].outcomes["m"].answers == (None, "x")
    assert s[0].outcomes["m"].extras == ({}, {"text": "five"}, {})  # 'answer' is a field, not an extra
    codes, labels = s.answers("m")
    assert codes.tolist() == [[0, 1, 0], [-1, 0, -1], [-1, -1, -1]]
    assert labels == [("4", "5"), ("x",), ()]
    out = tmp_path / "back.jsonl"
    s.write_jsonl(out)
    assert [json.loads(x) for x in out.read_text().splitlines()] == lines
    assert OutcomeSet.read_jsonl(out) == s


def test_answers_none_without_any_answer_and_feed_the_vote_curve(tmp_path):
    from adaptive_router.curves import expected_majority_vote

    s = OutcomeSet.from_dicts([_rec(0, {"m": [{"reward": 1.0}], "r": [{"reward": 1.0, "answer": "a"}]})])
    assert s.answers("m") is None
    with pytest.raises(ConfigError, match="unknown procedure 'z'"):
        s.answers("z")
    samples = [{"reward": 1.0, "answer": "7"}, {"reward": 1.0, "answer": "7"}, {"reward": 0.0, "answer": "1"}]
    votes = OutcomeSet.from_dicts([_rec(0, {"m": samples})])
    codes, _ = votes.answers("m")
    np.testing.assert_allclose(expected_majority_vote(codes, votes.rewards("m"), 3), [[2 / 3, 2 / 3, 1.0]])


@pytest.mark.parametrize(
    ("sample", "match"),
    [
        ({"reward": 1, "answer": 4}, r"outcomes\.m\[0\]\.answer must be a string .*got 4; omit the key"),
        ({"reward": 1, "answer": None}, r"outcomes\.m\[0\]\.answer must be a string .*got None"),
        ({"reward": 1, "answer": ["4"]}, r"answer must be a string"),
    ],
)
def test_bad_answers_are_rejected_with_line(tmp_path, sample, match):
    with pytest.raises(OutcomeFormatError, match=match) as info:
        OutcomeSet.read_jsonl(_write(tmp_path, [_rec(0, {"m": [{"reward": 1.0}]}), _rec(1, {"m": [sample]})]))
    assert info.value.line == 2


def test_procedure_outcome_checks_answers():
    with pytest.raises(OutcomeFormatError, match="answers has 1 entries for 2 rewards"):
        ProcedureOutcome(rewards=(1.0, 0.0), answers=("a",))
    with pytest.raises(OutcomeFormatError, match="answers must be strings or None"):
        ProcedureOutcome(rewards=(1.0,), answers=(3,))  # type: ignore[arg-type]
