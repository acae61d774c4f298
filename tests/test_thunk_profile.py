"""experiments/benchmarks/thunk_profile.py: its trace and HLO readers agree with what
XLA:CPU compiles and runs (the tool's premise: a trace event's name is an instruction
of the compiled HLO, whose op_name says where in the JAX code it came from)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp

TOOL = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "thunk_profile.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("thunk_profile", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def product_and_noise(key, x, w):
    """A product (a thunk of its own) and a threefry draw (a 5-trip loop on XLA:CPU)."""
    return x @ w, jax.random.uniform(key, (64,))


def test_trace_events_name_hlo_instructions_whose_op_names_locate_the_code(tmp_path):
    tool = load_tool()
    args = (jax.random.key(0), jnp.ones((128, 64)), jnp.ones((64, 64)))
    compiled = jax.jit(product_and_noise).lower(*args).compile()
    hlo = compiled.as_text()
    ops = tool.op_names(hlo)
    assert any(op.endswith("dot_general") for op in ops.values()), ops

    loops = tool.rolled_loops(hlo)
    assert any(k.startswith("5: ") and "uniform" in k for k in loops), loops

    jax.block_until_ready(compiled(*args))
    jax.profiler.start_trace(str(tmp_path))
    for _ in range(3):
        jax.block_until_ready(compiled(*args))
    jax.profiler.stop_trace()
    names = {event["name"] for event in tool.thunk_events(tmp_path)}
    traced_ops = [ops[name] for name in names if name in ops]
    assert any(op.endswith("dot_general") for op in traced_ops), traced_ops


def test_rows_name_an_op_by_the_last_parts_of_its_op_name():
    """The docstring's example row, ``transpose(jvp(ActorCritic))/critic_torso/Dense_1/
    dot_general``: the innermost four scopes, the op itself last."""
    tool = load_tool()
    op_name = "jit(train)/while/body/transpose(jvp(ActorCritic))/critic_torso/Dense_1/dot_general"
    assert tool.short(op_name) == "transpose(jvp(ActorCritic))/critic_torso/Dense_1/dot_general"
    assert tool.short(op_name, 2) == "Dense_1/dot_general"
    assert tool.short("jit(f)/add") == "jit(f)/add"  # fewer parts than asked: all of them
