import pytest

from atommem.eval.metrics import exact_match, extract_boxed, f1_score, normalize_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\boxed{Paris}", "Paris"),
        (r"The answer is \boxed{ Paris }.", "Paris"),
        (r"\boxed{\text{New {York} City}}", r"\text{New {York} City}"),  # nested braces
        (r"first \boxed{Rome} then \boxed{Paris}", "Paris"),  # last box wins
        (r"\boxed {Lyon}", "Lyon"),
        ("  Paris  ", "Paris"),  # no box: the whole (stripped) answer body
        (r"\boxed{Rome} and a cut-off \boxed{Par", "Rome"),  # last complete box
        (r"\boxed{Par", None),  # truncated, nothing complete
        ("   ", None),
        (None, None),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_normalize_answer_squad_rules():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("An apple, a pear") == "apple pear"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("U.S.A.") == "usa"


def test_exact_match_uses_best_alias_and_handles_none():
    assert exact_match("the USA", ["United States", "USA"]) == 1.0
    assert exact_match("Canada", ["United States", "USA"]) == 0.0
    assert exact_match(None, ["USA"]) == 0.0


def test_f1_token_overlap_and_max_over_golds():
    # pred tokens {barack, obama}, gold {obama}: p=1/2, r=1 -> 2/3
    assert f1_score("Barack Obama", ["Obama"]) == pytest.approx(2 / 3)
    assert f1_score("Barack Obama", ["Michelle", "Barack Hussein Obama"]) == pytest.approx(0.8)
    assert f1_score("nothing shared", ["Obama"]) == 0.0
    assert f1_score(None, ["Obama"]) == 0.0


def test_f1_yes_no_rule_from_hotpotqa_eval():
    assert f1_score("yes", ["no"]) == 0.0
    assert f1_score("yes it is", ["yes"]) == 0.0  # gold is yes, pred differs -> 0 despite overlap
    assert f1_score("no", ["no not really"]) == 0.0  # pred is no, gold differs -> 0
    assert f1_score("Yes.", ["yes"]) == 1.0


def test_golds_must_be_a_nonempty_list():
    with pytest.raises(ValueError, match="gold"):
        exact_match("x", [])
    with pytest.raises(TypeError, match="list"):
        f1_score("x", "x")


def test_require_box_refuses_bare_text():
    assert extract_boxed("Paris", require_box=True) is None
    assert extract_boxed("so \\boxed{Paris}", require_box=True) == "Paris"
    assert extract_boxed("Paris") == "Paris"  # baselines' free-form replies stay lenient
