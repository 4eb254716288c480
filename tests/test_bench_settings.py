"""``bench --preset a,b``: several settings as one job graph under one --out, one combined report,
every option applying to every setting, bad presets refused before any work; end to end (slow):
two offline settings on tiny data, killed after the first setting and resumed without
recomputing a finished stage (``pytest -m slow tests/test_bench_settings.py``: 116 s and 133 s
alone on the shared 2-core box under a load average of 4 to 5, about 95 s of CPU time)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _cli import BENCH
from _icons import drawing, icon_tree

from oodbench.bench.jobs import Job, ReportSpec, SettingsSpec, setting_folder
from oodbench.bench.plan import graph
from oodbench.bench.settings import setting_configs, settings_graph
from oodbench.cli import main
from oodbench.config import BenchConfig, Preset
from oodbench.runs import RunDir

TWO = "offline,icons-wrn16"  # Fashion-MNIST with small_cnn; colour icons with WRN-16-2
OPTIONS = {"epochs": 1, "subset": 256, "val_size": 64, "seeds": (0,), "detectors": ("msp",),
           "ood": ("isun",), "val_ood": ("lsun-crop",), "device": "cpu"}  # fmt: skip


def test_several_presets_are_one_graph_under_one_out(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Preset, "check_data", lambda *a: None)  # the plan reads no data
    out = tmp_path / "bench"
    cfgs = setting_configs(TWO, str(out), **OPTIONS)
    jobs = settings_graph(cfgs, out)
    assert [j.where for j in jobs if j.kind == "train"] == [
        "offline/ce", "offline/logitnorm", "icons-wrn16/ce", "icons-wrn16/logitnorm"]  # fmt: skip
    assert all(j.out == out and j.marker.parent == out / ".jobs" for j in jobs)
    assert len({j.key for j in jobs}) == len(jobs) == 11  # 4 train, 4 score, 2 + 1 report
    # the options typed apply to every setting; the recipe is each preset's own
    trained = {j.where: j.config for j in jobs if j.kind == "train"}
    assert {(c.epochs, c.subset, c.val_size) for c in trained.values()} == {(1, 256, 64)}
    assert trained["offline/ce"].model == "small_cnn"
    assert trained["icons-wrn16/ce"].model == "wrn_16_2"
    combined = jobs[-1]
    assert combined.kind == "report" and combined.folder == out
    assert isinstance(combined.config, SettingsSpec)
    assert combined.config.folders == ("offline", "icons-wrn16")
    setting_reports = [j for j in jobs if isinstance(j.config, ReportSpec)]
    assert combined.needs == tuple(j.key for j in setting_reports)
    # one preset keeps the single-setting layout and keys (a bench of 0.2 resumes as it was)
    (one,) = setting_configs("offline", str(out), **OPTIONS)
    single = BenchConfig(out=str(out), **OPTIONS)
    assert [j.key for j in graph(one)] == [j.key for j in graph(single)]


def test_each_setting_keeps_its_track_folders(tmp_path: Path, monkeypatch) -> None:
    from oodbench.report.across import setting_name

    monkeypatch.setattr(Preset, "check_data", lambda *a: None)
    out = tmp_path / "bench"
    cfgs = setting_configs(TWO, str(out), **OPTIONS, tracks=("far", "near"))
    spec = settings_graph(cfgs, out)[-1].config
    assert isinstance(spec, SettingsSpec)
    assert spec.folders == ("offline/far", "offline/near", "icons-wrn16/far", "icons-wrn16/near")
    assert spec.runs[3] == ("icons-wrn16/near/ce", "icons-wrn16/near/logitnorm")
    assert [setting_name(f) for f in ("offline", "icons-wrn16/near")] == [
        ("offline", "far"), ("icons-wrn16", "near")]  # fmt: skip


def test_slurm_runs_the_combined_report_after_every_setting(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(Preset, "check_data", lambda *a: None)
    out = tmp_path / "bench"
    argv = ["bench", "--preset", TWO, "--out", str(out), "-d", "msp", "--ood", "isun",
            "--val-ood", "lsun-crop", "--launcher", "slurm", "--dry-run"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    ids = dict(re.findall(r"^# --- job (\d+): (.+) \(key", text, re.M))
    assert len(ids) == 11 and not out.exists()  # planned and printed, nothing written
    by_name = {name: num for num, name in ids.items()}
    last = text.rsplit("# --- job", 1)[1]
    assert last.startswith(" 11: report . (key")
    wanted = f"afterany:{by_name['report offline']}:{by_name['report icons-wrn16']}"
    assert f"#SBATCH --dependency={wanted}" in last


def test_tau_table_goes_to_the_setting_folder(tmp_path: Path) -> None:
    def report(folder: Path) -> Job:
        return Job("report", folder, ReportSpec(()), tmp_path)

    assert setting_folder(report(tmp_path)) == tmp_path  # one setting, far only
    assert setting_folder(report(tmp_path / "far")) == tmp_path  # one setting, two tracks
    assert setting_folder(report(tmp_path / "offline")) == tmp_path / "offline"
    assert setting_folder(report(tmp_path / "offline" / "near")) == tmp_path / "offline"


@pytest.mark.parametrize(
    ("presets", "message"),
    [("offline,nope", "unknown preset 'nope': choose from offline, "),
     ("offline,offline", "--preset names a setting twice: offline,offline"),
     ("offline,icons-wrn16", "--preset icons-wrn16 needs icons-ctx8, not on this machine: "
                             "run 'make data' (apt-get install ")],
)  # fmt: skip
def test_a_bad_preset_fails_in_one_line_before_any_work(
    presets: str, message: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    from oodbench.data.sources import iconfiles

    monkeypatch.setattr(iconfiles, "ICON_DIR", tmp_path / "no-icons")
    out = tmp_path / "bench"
    assert main(["bench", "--preset", presets, "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not out.exists()  # nothing planned, trained or written


def test_help_says_the_options_apply_to_every_setting(capsys) -> None:
    assert main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "Several, comma-separated" in text and "apply to every setting" in text


# ------------------------------------------------------------------------- end to end (slow)


def _fixture_root(root: Path) -> Path:
    """icons-ctx8 (320 training icons) and two tiny image folders, isun (test) and lsun-crop
    (validation), that both settings read as OOD sets at their own geometry."""
    icon_tree(root, per_context=20)
    for folder, first in (("iSUN", 5000), ("LSUN/test", 6000)):
        (root / folder).mkdir(parents=True)
        for i in range(64):
            drawing(first + i, 36).convert("RGB").save(root / folder / f"{i}.png")
    return root


def _markers(out: Path) -> dict[str, int]:
    """Done-marker file -> its mtime (the ledger plan.json is not a marker)."""
    return {p.name: p.stat().st_mtime_ns for p in (out / ".jobs").glob("*-*.json")}


def _where(out: Path, name: str) -> str:
    return json.loads((out / ".jobs" / name).read_text())["where"]


@pytest.mark.slow
def test_two_settings_end_to_end_killed_and_resumed(tmp_path: Path) -> None:
    root, out = _fixture_root(tmp_path / "root"), tmp_path / "bench"
    argv = ["bench", "--preset", TWO, "--out", str(out), "--root", str(root), "-d", "msp",
            "--ood", "isun", "--val-ood", "lsun-crop", *BENCH]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "oodbench", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 600
    try:  # killed once the first setting is reported, before the second is
        while not (out / "offline" / "report.md").is_file():
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the first setting did not finish in time"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = _markers(out)
    assert not (out / "report.md").exists() and not RunDir(out / "icons-wrn16/logitnorm").is_scored
    first = {n: t for n, t in before.items() if _where(out, n).startswith("offline")}
    assert len(first) >= 4  # offline's trainings and scorings are done-marked
    weights = {
        r: RunDir(out / r).weights.stat().st_mtime_ns for r in ("offline/ce", "offline/logitnorm")
    }

    assert main(argv) == 0  # the same command again: it resumes
    after = _markers(out)
    assert len(after) == 11 and all(after[n] == t for n, t in before.items())
    assert all(RunDir(out / r).weights.stat().st_mtime_ns == t for r, t in weights.items())
    report = (out / "report.md").read_text()
    for name in ("offline", "icons-wrn16"):
        assert f"[{name}/report.md]" in report and (out / name / "report.md").is_file()
    assert "small_cnn" in report and "wrn_16_2" in report and "Not finished" not in report
    assert (out / "plots" / "settings_msp_auroc.png").stat().st_size > 5000
    rows = (out / "settings.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("setting,track,model,id_dataset,loss")

    stamp = (out / "report.md").stat().st_mtime_ns
    assert main(argv) == 0  # all done: nothing recomputed, not even the combined report
    assert _markers(out) == after and (out / "report.md").stat().st_mtime_ns == stamp
