import jax
import jax.numpy as jnp
import pytest

from jaxgan import xla_stats

# A module by hand: ENTRY runs one fusion, a loop of 5 (its body: a fusion, a copy and an
# inner loop of 3 over a fusion and an add, each iteration also running the condition's
# compare), and a lighter loop of 2 over the inner body.
HLO = """HloModule by_hand, entry_computation_layout={(f32[4]{0})->f32[4]{0}}

%fused_computation (p: f32[4]) -> f32[4] {
  %p = f32[4]{0} parameter(0)
  ROOT %t = f32[4]{0} tanh(%p)
}

%inner_body (t: (s32[], f32[4])) -> (s32[], f32[4]) {
  %t = (s32[], /*index=1*/f32[4]{0}) parameter(0)
  %i = s32[] get-tuple-element(%t), index=0
  %x = f32[4]{0} get-tuple-element(%t), index=1
  %f = f32[4]{0} fusion(%x), kind=kLoop, calls=%fused_computation
  %one = s32[] constant(1)
  %j = s32[] add(%i, %one)
  ROOT %r = (s32[], f32[4]{0}) tuple(%j, %f)
}

%cond (t: (s32[], f32[4])) -> pred[] {
  %t = (s32[], f32[4]{0}) parameter(0)
  %i = s32[] get-tuple-element(%t), index=0
  %n = s32[] constant(3)
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

%outer_body (t: (s32[], f32[4])) -> (s32[], f32[4]) {
  %t = (s32[], f32[4]{0}) parameter(0)
  %x = f32[4]{0} get-tuple-element(%t), index=1
  %f = f32[4]{0} fusion(%x), kind=kLoop, calls=%fused_computation
  %c = f32[4]{0} copy(%f)
  %zero = s32[] constant(0)
  %init = (s32[], f32[4]{0}) tuple(%zero, %c)
  %w = (s32[], f32[4]{0}) while(%init), condition=%cond, body=%inner_body, backend_config={"known_trip_count":{"n":"3"}}
  %i = s32[] get-tuple-element(%t), index=0
  %one = s32[] constant(1)
  %j = s32[] add(%i, %one)
  %y = f32[4]{0} get-tuple-element(%w), index=1
  ROOT %r = (s32[], f32[4]{0}) tuple(%j, %y)
}

ENTRY %main (a: f32[4]) -> f32[4] {
  %a = f32[4]{0} parameter(0)
  %f = f32[4]{0} fusion(%a), kind=kLoop, calls=%fused_computation
  %zero = s32[] constant(0)
  %init = (s32[], f32[4]{0}) tuple(%zero, %f)
  %outer = (s32[], f32[4]{0}) while(%init), condition=%cond, body=%outer_body, backend_config={"known_trip_count":{"n":"5"}}
  %light = (s32[], f32[4]{0}) while(%outer), condition=%cond, body=%inner_body, backend_config={"known_trip_count":{"n":"2"}}
  ROOT %y = f32[4]{0} get-tuple-element(%light), index=1
}
"""


def test_hlo_ops_counts_fusions_and_kernels_of_a_module_by_hand():
    # Static: ENTRY fusion; outer loop: its compare, its body's fusion, copy, add, and the
    # inner loop's fusion, add and compare; the light loop again its fusion, add and compare.
    # Per outer iteration: fusion, copy, add, 3 x (fusion, add, compare), its own compare.
    assert xla_stats.hlo_ops(HLO) == {"fusions": 4, "kernels": 11, "step_fusions": 4, "step_kernels": 13}


def test_hlo_ops_refuses_text_that_is_no_hlo_module():
    with pytest.raises(ValueError, match="no ENTRY computation"):
        xla_stats.hlo_ops("not hlo")


def test_cost_of_a_tiny_function_is_its_known_flops():
    f = jax.jit(lambda a, b: jnp.tanh(a @ b) + 1.0)
    compiled = f.lower(jnp.ones((8, 16)), jnp.ones((16, 4))).compile()
    cost = xla_stats.cost(compiled)
    assert cost["flops"] == 2 * 8 * 16 * 4 + 8 * 4  # the product's multiply-adds, then the add
    assert cost["transcendentals"] == 8 * 4
    assert cost["bytes_accessed"] >= 4 * (8 * 16 + 16 * 4 + 8 * 4)  # at least the inputs and the output
    ops = xla_stats.hlo_ops(compiled.as_text())
    assert 1 <= ops["fusions"] <= ops["kernels"] <= 3  # the product and the element-wise tail, fused or not
    assert (ops["step_fusions"], ops["step_kernels"]) == (ops["fusions"], ops["kernels"])  # no loop: one call


@pytest.mark.parametrize("unroll", [1, True])
@pytest.mark.parametrize("steps", [4, 8])
def test_per_step_cost_of_a_scanned_epoch_is_one_step(steps, unroll):
    def epoch(w, xs):
        return jax.lax.scan(lambda c, x: (jnp.tanh(c @ w + x), None), jnp.zeros((8, 16)), xs, unroll=unroll)[0]

    compiled = jax.jit(epoch).lower(jnp.ones((16, 16)), jnp.ones((steps, 8, 16))).compile()
    per_step = xla_stats.per_step_cost(compiled, steps)
    assert per_step["flops"] == pytest.approx(2 * 8 * 16 * 16 + 8 * 16, rel=0.05)
    assert per_step["transcendentals"] == pytest.approx(8 * 16, rel=0.05)
