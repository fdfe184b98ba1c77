"""The operation grammar never raises, skips only malformed tags, and keeps textual order."""

from hypothesis import given, settings
from hypothesis import strategies as st

from atommem.agent.ops import OP_TAGS, parse_response

FRAGMENTS = [
    *[f"<{t}>" for t in OP_TAGS.values()],
    *[f"</{t}>" for t in OP_TAGS.values()],
    "Memory 1:", "Memory 2", "Memory 0:", "Memory -1", "Memory x:", "\\boxed{", "}", "{", "<", ">", "/",
    "fact", " ", "\n", "é", "<add_memory", "memory 1:", "Memory 99: t",
]


def test_ops_in_textual_order():
    parsed = parse_response(
        "<update_query>who</update_query> text <add_memory>A is B</add_memory>"
        "<modify_memory>Memory 2: A is C</modify_memory><delete_memory>Memory 1</delete_memory>"
        "<update_memory>notes</update_memory><final_answer>\\boxed{C}</final_answer>"
    )
    assert [op.name for op in parsed.ops] == ["read", "create", "update", "delete", "scratchpad", "answer"]
    assert parsed.ops[2].index == 2 and parsed.ops[2].text == "A is C"
    assert parsed.ops[3].index == 1
    assert parsed.ops[5].text == "C"
    assert not parsed.invalid


def test_malformed_tag_skipped_rest_executed():
    parsed = parse_response(
        "<modify_memory>no index here</modify_memory><add_memory>kept</add_memory>"
        "<delete_memory>Memory two</delete_memory><update_query>q</update_query>"
    )
    assert [op.name for op in parsed.ops] == ["create", "read"]
    assert parsed.invalid == {"invalid_op/update": 1, "invalid_op/delete": 1}


def test_no_valid_tag_is_invalid_turn():
    assert parse_response("I will think about it.").invalid == {"invalid_turn": 1}
    assert parse_response("").invalid == {"invalid_turn": 1}
    unclosed = parse_response("<add_memory>never closed")
    assert unclosed.ops == [] and unclosed.invalid == {"invalid_op/create": 1, "invalid_turn": 1}


def test_nested_tag_is_body_text_not_an_op():
    parsed = parse_response("<add_memory>x <delete_memory>Memory 1</delete_memory></add_memory>")
    assert [op.name for op in parsed.ops] == ["create"]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=30).map("".join))
def test_parser_never_raises_and_counts(text):
    parsed = parse_response(text)
    assert all(op.name in OP_TAGS for op in parsed.ops)
    assert all(count > 0 for count in parsed.invalid.values())
    assert all(k == "invalid_turn" or k.removeprefix("invalid_op/") in OP_TAGS for k in parsed.invalid)
    assert ("invalid_turn" in parsed.invalid) == (not parsed.ops)
    for op in parsed.ops:
        if op.name in ("update", "delete"):
            assert op.index is not None and op.index >= 1
        else:
            assert op.index is None


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(list(OP_TAGS)), min_size=1, max_size=8), st.text(alphabet="abc xyz", min_size=1, max_size=10))
def test_well_formed_ops_round_trip(names, body):
    body = body.strip() or "x"
    pieces = []
    for name in names:
        tag = OP_TAGS[name]
        inner = {"update": f"Memory 1: {body}", "delete": "Memory 1", "answer": f"\\boxed{{{body}}}"}.get(name, body)
        pieces.append(f"<{tag}>{inner}</{tag}>")
    parsed = parse_response(" filler ".join(pieces))
    assert [op.name for op in parsed.ops] == names
    assert not parsed.invalid


def test_an_answer_without_a_box_is_invalid_and_earns_nothing():
    """The reward's rule (atommem.eval.metrics.extract_boxed): the agent's answer must be boxed."""
    parsed = parse_response("<final_answer>Paris</final_answer><add_memory>kept</add_memory>")
    assert [op.name for op in parsed.ops] == ["create"]
    assert parsed.invalid == {"invalid_op/answer": 1}


def test_every_list_of_operations_agrees_with_the_grammar_module():
    """atommem/agent/ops.py defines the operations once; the lists elsewhere must match it (docs/extending.md)."""
    from pathlib import Path

    import yaml

    from atommem.agent import env, ops, prompts
    from atommem.plots import OPS as FIGURE_OPS
    from atommem.train import rl_loop, synthesize

    assert ops.OP_NAMES == tuple(OP_TAGS) and set(ops.STORE_OPS) | set(ops.WRITE_OPS) <= set(ops.OP_NAMES)
    assert set(prompts.OP_HELP) == set(ops.OP_NAMES), "prompts.OP_HELP"
    for name, help_line in prompts.OP_HELP.items():
        assert help_line.startswith(f"<{OP_TAGS[name]}>"), f"prompts.OP_HELP[{name!r}]"
    assert env.WRITE_OPS == ops.WRITE_OPS, "env.WRITE_OPS"
    assert rl_loop.OP_NAMES == ops.COUNTED_OPS, "rl_loop.OP_NAMES"
    assert FIGURE_OPS == ops.STORE_OPS, "plots.OPS"
    assert synthesize.OP_NAMES == ops.OP_NAMES, "synthesize.OP_NAMES"
    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    disabled = schema["$defs"]["env_override"]["properties"]["disabled_ops"]["items"]["enum"]
    assert tuple(disabled) == ops.STORE_OPS, "schema env.disabled_ops"
