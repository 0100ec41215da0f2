"""The fast tier stays fast: tests that start a Prefect server, a process or a flow are kept
out of it automatically, or fail until they are marked (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py").read_text(encoding="utf-8")
FAST = ("-p", "no:cacheprovider", "-m", "not flow and not process and not slow")


@pytest.fixture
def project(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    flow: f\n    process: p\n    slow: s\n")
    return pytester


def test_a_test_using_a_server_fixture_is_left_out_of_the_fast_tier(project):
    project.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="session")
        def live_server():  # stands in for conftest's real one
            yield

        def test_with_the_harness(prefect_server):
            pass

        def test_with_the_live_server(live_server):
            pass

        def test_plain():
            pass
        """
    )
    # prefect_server is not overridden: were the test not deselected, the harness would start
    result = project.runpytest_inprocess(*FAST)
    result.assert_outcomes(passed=1, deselected=2)


def test_an_unmarked_test_that_starts_a_process_or_calls_a_flow_fails(project):
    project.makepyfile(
        """
        import os, subprocess, sys
        from prefect import flow

        @flow
        def tiny():
            return 1

        def test_subprocess():
            subprocess.run([sys.executable, "-c", "pass"])

        def test_fork():
            os.fork()

        def test_flow_call():
            tiny()
        """
    )
    result = project.runpytest_inprocess(*FAST)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*starts a process but is not marked*"])
    result.stdout.fnmatch_lines(["*calls a flow but is not marked*"])
