"""The lab default's rule on stored runs: junk and a losing design target rule a candidate out, slow selection is not
a candidate, a tie goes to the cheaper, every candidate is read on the same units, and the judged targets are only reported."""

from __future__ import annotations

from benchmarks.transferbench import default_rule

CLEAN, JUNK = 1, 2
KIND_OF = {CLEAN: "source", JUNK: "shuffled"}
DESIGN = ["d1", "d2"]
JUDGED = ["j1"]


def run(target: str, arm: str, acc: float, shots: int = 4, seed: int = 0, module: int = CLEAN, init_s: float = 1.0) -> dict:
    return dict(
        method="lora", target=target, shots=shots, seed=seed, arm=arm, test_acc=acc, init_s=init_s, module_weights=[[module, 1.0]]
    )  # fmt: skip


def stored() -> list[dict]:
    runs = []
    for target in [*DESIGN, *JUDGED]:
        runs += [run(target, "random", 0.40), run(target, "random-pool", 0.45)]
        runs += [run(target, "group-average", 0.50)]  # cheap and good, but all of its weight on junk
        runs[-1]["module_weights"] = [[JUNK, 1.0]]
        runs += [run(target, "retrieval", 0.70 if target == "d1" else 0.38)]  # the best mean, a design target 2 points below random
        runs += [run(target, "el2n@20", 0.560, init_s=20.0), run(target, "task-retrieval", 0.555)]  # tied: the cheaper wins
        runs += [run(target, "el2n", 0.90, init_s=100.0)]  # best of all, but its selection is over the bound
    runs += [run("d1", "el2n@20", 0.0, shots=16)]  # a unit the others did not run: not read
    return runs


def test_the_rule_keeps_the_clean_cheap_arm_and_reports_the_judged_targets() -> None:
    arms = ["random", "group-average", "retrieval", "el2n@20", "task-retrieval", "el2n", "random-pool"]
    runs = stored()
    assert default_rule.eligible(arms, runs, DESIGN) == ["group-average", "retrieval", "el2n@20", "task-retrieval"]
    found = {
        candidate.arm: candidate for candidate in default_rule.candidates(runs, "lora", (4, 16), default_rule.eligible(arms, runs, DESIGN), DESIGN, KIND_OF)
    }
    assert {candidate.units for candidate in found.values()} == {2}  # d1 and d2 at 4 shots: the 16-shot unit only el2n@20 ran is out
    assert found["group-average"].failed() == "junk 100.0 % ≥ 5 %"
    assert found["retrieval"].failed() == "d2 -2.0 at 4 shots"
    assert round(found["el2n@20"].gain, 1) == 16.0 and round(found["task-retrieval"].gain, 1) == 15.5
    assert default_rule.choose(list(found.values())).arm == "task-retrieval"

    lines = default_rule.section(runs, "lora", (4, 16), arms, DESIGN, JUDGED, KIND_OF)
    assert "| task-retrieval | 2 | +15.5 | +15.5 (d1, 4-shot) | 0.0 | 1.0 | chosen |" in lines
    assert "| el2n@20 | 2 | +16.0 | +16.0 (d1, 4-shot) | 0.0 | 20.0 | kept |" in lines
    (judged,) = [line for line in lines if line.startswith("| 4 |")]
    assert judged.startswith("| 4 | +10.5 [+10.5, +10.5] | +15.5 [+15.5, +15.5] | +5.5 [+5.5, +5.5] | +15.5 (j1) | 0.0 |")


def test_the_rule_says_when_it_has_nothing_to_read_or_nothing_passes() -> None:
    runs = [run("d1", "random", 0.40), run("d1", "group-average", 0.50), run("j1", "random", 0.40), run("j1", "el2n@20", 0.6, init_s=20.0)]
    runs[1]["module_weights"] = [[JUNK, 1.0]]
    # el2n@20 ran on no design target: not a candidate; group-average is one, and fails on its junk
    lines = default_rule.section(runs, "lora", (4,), ["random", "group-average", "el2n@20"], DESIGN, JUDGED, KIND_OF)
    assert "| group-average | 1 | +10.0 | +10.0 (d1, 4-shot) | 100.0 | 1.0 | junk 100.0 % ≥ 5 % |" in lines
    assert "No candidate meets the rule on the design targets." in lines and not any("el2n@20" in line for line in lines)
    del runs[1]["module_weights"]
    (candidate,) = default_rule.candidates(runs, "lora", (4,), ["group-average"], DESIGN, KIND_OF)
    assert candidate.failed() == "no run records its modules' weights"
    no_design_run = [runs[0], *runs[2:]]
    assert default_rule.section(no_design_run, "lora", (4,), ["random", "group-average"], ["d1"], JUDGED, KIND_OF)[2] == (
        "No candidate has run with random on a design unit (target, shots, seed) yet."
    )
