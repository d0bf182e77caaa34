"""benchmarks/step_profile.py: each XLA operation's own time, and the MuJoCo stage it belongs to."""

import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).parent.parent))

from benchmarks.step_profile import op_stages, self_times  # noqa: E402


class Event(NamedTuple):
    name: str
    start_ns: int
    duration_ns: int


def test_a_span_keeps_only_the_time_the_spans_nested_in_it_leave():
    # A while loop's span holds its body's operations; the second loop runs after the first.
    events = [Event("while.1", 0, 100), Event("a", 10, 20), Event("b", 40, 50), Event("c", 50, 10),
              Event("while.1", 200, 30), Event("a", 205, 5)]
    assert self_times(events) == {"while.1": 30 + 25, "a": 25, "b": 40, "c": 10}


def test_an_operation_is_charged_to_the_mujoco_stage_of_its_name_stack():
    hlo = "\n".join([
        '  %fusion.8 = f32[256,3]{1,0} fusion(%p), kind=kLoop, calls=%f, metadata={op_name="jit(step)/vmap()/'
        'while/body/closed_call/jit(step)/step/forward/solve/while/body/closed_call/reduce_sum" '
        'stack_frame_id=5}',
        '  ROOT %dot.2 = f32[256,18]{1,0} dot(%a, %b), metadata={op_name="jit(step)/vmap()/while/body/'
        'closed_call/jit(step)/step/forward/fwd_position/vmap(vmap())/dot_general"}',
        '  %copy.3 = f32[256]{0} copy(%x), metadata={op_name="jit(step)/vmap()/concatenate"}',
        '  %tuple.4 = (f32[256]{0}) tuple(%x)'])
    assert op_stages(hlo) == {"fusion.8": "forward/solve", "dot.2": "forward/fwd_position",
                              "copy.3": "(outside the step)"}
