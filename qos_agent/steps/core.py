"""Before and after every step, whatever its kind: what the core does around `Probe.run`.

`prepare` learns the secrets of what the step is about to send; `finish` extracts the step's
`extract:` values from what it yielded, learns the run's cookies and masks the whole result. The
runner calls both around each step (with its timeouts, lag marks and time stamps in between); a
test that drives a probe alone calls them too (tests/support/probe_ctx.py), so it sees what a run sees.
"""

from __future__ import annotations

from qos_agent.model import Step, StepResult
from qos_agent.plugins.context import RunContext
from qos_agent.steps.extract import extract
from qos_agent.steps.masking import learn, learn_cookies, mask_result, masked_name


def prepare(step: Step, ctx: RunContext) -> None:
    if step.learn:  # only what may carry a credential (StepKind.sends, kept by the loader)
        learn(step.learn, ctx)


def finish(step: Step, result: StepResult, ctx: RunContext) -> None:
    if step.extract and result.outcome.ok:
        extract(step.extract, result, ctx.cookie_jar)
        # `secret: true` extractions: masked from now on, in this step's own result too.
        ctx.redact.add(*(result.extracted[e.name] for e in step.extract if e.secret and e.name in result.extracted))
    result.yielded = None
    learn_cookies(ctx)
    mask_result(result, ctx.redact)
    if result.substeps:  # a script's sub-steps are step points too: masked the same way, names too
        for sub in result.substeps:
            mask_result(sub, ctx.redact)
            sub.step = masked_name(sub.step, ctx.redact)
