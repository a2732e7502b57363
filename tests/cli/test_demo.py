import json
import subprocess
import sys

from digmat.cli.main import main


def test_demo_json_reports_small_errors(capsys):
    assert main(["demo", "-n", "1500", "--sde-steps", "200", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ode"]["evaluations"] <= 50
    assert report["ode"]["max_weight_error"] < 0.04
    assert report["sde"]["max_weight_error"] < 0.04
    assert report["density"]["max_abs_error_nats"] < 0.05
    assert report["path"]["min_log_density_latent_path"] > report["path"]["min_log_density_straight_line"]


def test_bad_arguments_give_a_message_and_exit_code(capsys):
    assert main(["demo", "-n", "3"]) == 2
    assert "--num-samples must be at least 10" in capsys.readouterr().err


def test_console_script_help_is_fast_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "digmat.cli.main", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout
    # no heavy import at start-up
    probe = "import sys, digmat.cli.main; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"
