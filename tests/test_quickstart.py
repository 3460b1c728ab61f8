"""The quickstart pipeline end to end on tiny settings: every stage's section and figure, and resume."""

from __future__ import annotations

from dataclasses import replace

from dance3d.dance.aap import AapSettings
from dance3d.dance.ava import AvaSettings
from dance3d.quickstart import QuickstartConfig, run_quickstart
from studies import StudyConfig

SECTIONS = ("Data", "Dense training", "Dense evaluation", "AVA", "AAP", "Profile", "Study", "Run")


def tiny_quickstart(run) -> QuickstartConfig:
    return QuickstartConfig(
        run=replace(run, train=replace(run.train, epochs=1)),
        ava=AvaSettings(epochs=1, batch_size=8, measure_clips=16, progress=False),
        aap=AapSettings(epochs=1, batch_size=8, target_mac_fraction=0.5, measure_clips=16, progress=False),
        study=StudyConfig(objectives=("accuracy", "mac_fraction"), trials=3, startup_trials=2, latency_repeats=1),
        study_clips=8,
    )


def test_quickstart_writes_every_section_with_figures_and_resumes(tmp_path, tiny_run_config):
    out = tmp_path / "quick"
    report = run_quickstart(tiny_quickstart(tiny_run_config), out)
    text = report.read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    for section in SECTIONS:
        assert any(section in h for h in headings), f"no {section} section in {headings}"
    figures = [line[line.index("(") + 1 : -1] for line in text.splitlines() if line.startswith("![")]
    assert len(figures) >= 9
    for figure in figures:
        assert (out / figure).stat().st_size > 5_000, figure  # a real plot, not an empty canvas
    assert "mean MAC fraction" in text and "complete trials" in text

    mtime = (out / "aap" / "model.pt").stat().st_mtime_ns
    run_quickstart(tiny_quickstart(tiny_run_config), out)  # resumes: finished stages reused, study topped up
    assert (out / "aap" / "model.pt").stat().st_mtime_ns == mtime
