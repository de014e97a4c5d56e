"""Pytest plugin: one Zeebe broker per test session, shared by every pytest-xdist worker.

The controller process (the only process without ``config.workerinput``) starts the broker on free
ports in ``pytest_configure``, before xdist spawns its workers, and exports ``ZEEBE_ADDRESS`` so the
workers inherit it. It stops the broker in ``pytest_unconfigure``. A ``ZEEBE_ADDRESS`` set beforehand
is used as it is. ``--no-zeebe-broker`` starts nothing (for unit-only runs); tests that ask for
``zeebe_address`` then fail, they are never skipped.

Register with ``pytest_plugins = ["tests.support.broker_fixture"]`` in the root ``conftest.py``.
"""

from __future__ import annotations

import os

import pytest

from tests.support.records import RECORDS_LOG_ENV
from worker.broker import Broker, BrokerError, start_broker

_BROKER = pytest.StashKey[Broker]()
_ERROR = pytest.StashKey[str]()
_PREVIOUS_ADDRESS = pytest.StashKey[str | None]()
_WORKERINPUT_ERROR = "zeebe_broker_error"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-zeebe-broker",
        action="store_true",
        default=False,
        help="do not start a Zeebe broker for the session (tests using zeebe_address fail)",
    )


def _wants_broker(config: pytest.Config) -> bool:
    option = config.option
    return not (
        getattr(option, "no_zeebe_broker", False)
        or getattr(option, "help", False)
        or getattr(option, "version", False)
        or getattr(option, "collectonly", False)
    )


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not _wants_broker(config):
        return
    config.stash[_PREVIOUS_ADDRESS] = os.environ.get("ZEEBE_ADDRESS")
    try:
        broker = start_broker(fixed_ports=False, log_records=True)
    except BrokerError as error:
        config.stash[_ERROR] = f"no Zeebe broker for this test session: {error}"
        return
    config.stash[_BROKER] = broker
    os.environ["ZEEBE_ADDRESS"] = broker.address
    if broker.log_file is not None:
        os.environ[RECORDS_LOG_ENV] = str(broker.log_file)


def pytest_unconfigure(config: pytest.Config) -> None:
    broker = config.stash.get(_BROKER, None)
    if broker is None:
        return
    del config.stash[_BROKER]
    broker.stop()
    os.environ.pop(RECORDS_LOG_ENV, None)
    previous = config.stash.get(_PREVIOUS_ADDRESS, None)
    if previous is None:
        os.environ.pop("ZEEBE_ADDRESS", None)
    else:
        os.environ["ZEEBE_ADDRESS"] = previous


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """xdist (controller side): hand a start failure to each worker, which cannot see the stash."""
    config: pytest.Config = node.config  # type: ignore[attr-defined]
    error = config.stash.get(_ERROR, None)
    if error is not None:
        node.workerinput[_WORKERINPUT_ERROR] = error  # type: ignore[attr-defined]


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    line = _status_line(config)
    if line is not None:
        error = _ERROR in config.stash
        reporter.write_line(line, red=error, bold=error)


def _status_line(config: pytest.Config) -> str | None:
    if _ERROR in config.stash:
        return config.stash[_ERROR]
    broker = config.stash.get(_BROKER, None)
    if broker is None:
        return None
    if not broker.started_here:
        return f"Zeebe broker: using ZEEBE_ADDRESS={broker.address} (nothing started)"
    return (
        f"Zeebe broker {broker.version} started by the test session at {broker.address} "
        f"in {broker.startup_seconds:.1f} s"
    )


def _start_error(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    if isinstance(workerinput, dict) and _WORKERINPUT_ERROR in workerinput:
        return str(workerinput[_WORKERINPUT_ERROR])
    if _ERROR in config.stash:
        return config.stash[_ERROR]
    return "no Zeebe broker for this test session: ZEEBE_ADDRESS is not set (was --no-zeebe-broker given?)"


@pytest.fixture(scope="session")
def zeebe_address(pytestconfig: pytest.Config) -> str:
    """``host:port`` of the session's Zeebe gateway; fails (never skips) when there is none."""
    address = os.environ.get("ZEEBE_ADDRESS", "").strip()
    if not address:
        pytest.fail(_start_error(pytestconfig), pytrace=False)
    return address
