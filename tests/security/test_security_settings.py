"""Security settings -> client arguments, in one helper; half-configured security is an error.

Plus SASL against the real embedded broker, as far as it goes: tansu 0.6 with
``--authentication`` runs the SCRAM exchange, but its ``tansu user create`` cannot log in
to such a broker to create a user (and without ``--authentication`` it answers
SaslHandshake with UnsupportedSaslMechanism), so a *successful* SASL login cannot be
shown here. What is shown: the credentials reach the broker's SCRAM exchange, and a
refused login is a one-line exit 3 from ``leadline send`` and ``leadline worker``.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials

from config.settings import Settings, SettingsError, load_settings
from embedded.services import Service, free_port, tansu_binary
from streams.security import aiokafka_security, faust_credentials, web_ssl_context
from tests.security.tls import make_certificate
from tests.support.worker import ROOT


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("LEADLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("cert"))


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    s = load_settings()
    assert aiokafka_security(s) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None
    assert web_ssl_context(s) is None


def test_ssl_verifies_the_broker_against_the_ca_file(certificate: tuple[Path, Path]) -> None:
    s = load_settings(kafka_security_protocol="SSL", kafka_ssl_cafile=certificate[0])
    kwargs = aiokafka_security(s)
    assert kwargs["security_protocol"] == "SSL"
    context = kwargs["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    creds = faust_credentials(s)
    assert isinstance(creds, SSLCredentials)
    assert creds.context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_mechanisms_reach_every_client(protocol: str, mechanism: str) -> None:
    s = load_settings(kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism,
                      kafka_sasl_username="leadline", kafka_sasl_password="s3cret")
    kwargs = aiokafka_security(s)
    assert kwargs["security_protocol"] == protocol
    assert kwargs["sasl_mechanism"] == mechanism
    assert kwargs["sasl_plain_username"] == "leadline"
    assert kwargs["sasl_plain_password"] == "s3cret"
    assert ("ssl_context" in kwargs) == (protocol == "SASL_SSL")
    creds = faust_credentials(s)
    assert isinstance(creds, SASLCredentials)
    assert creds.protocol.value == protocol and creds.mechanism.value == mechanism
    assert "s3cret" not in repr(creds) and "s3cret" not in repr(s) and "s3cret" not in str(s)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN",
          "kafka_sasl_password": "x"}, "LEADLINE_KAFKA_SASL_USERNAME"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u",
          "kafka_sasl_password": "x"}, "LEADLINE_KAFKA_SASL_MECHANISM"),
        ({"metrics_username": "prometheus"}, "LEADLINE_METRICS_PASSWORD"),
        ({"web_cert": "/nonexistent.crt"}, "LEADLINE_WEB_KEY"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nonexistent/ca.pem"},
         "LEADLINE_KAFKA_SSL_CAFILE"),
    ],
)
def test_half_configured_security_fails_naming_the_variable(
    settings: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(**settings)


def test_web_tls_context_serves_the_configured_certificate(
    certificate: tuple[Path, Path]
) -> None:
    s = load_settings(web_cert=certificate[0], web_key=certificate[1])
    context = web_ssl_context(s)
    assert isinstance(context, ssl.SSLContext)
    assert isinstance(s, Settings)


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    work = tmp_path_factory.mktemp("sasl")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with Service("broker (tansu, SASL)", [str(tansu_binary()), "broker", "--listener-url", url,
                                          "--advertised-listener-url", url, "--authentication"],
                 port, work / "tansu.log") as svc:
        yield svc


@pytest.mark.slow
@pytest.mark.parametrize("command", ["send", "worker"])
def test_a_refused_sasl_login_is_a_one_line_exit_3(
    sasl_broker: Service, redis_server: Service, command: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADLINE_")} | {
        "PYTHONPATH": str(ROOT), "LEADLINE_BROKER": f"kafka://127.0.0.1:{sasl_broker.port}",
        "LEADLINE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "LEADLINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "LEADLINE_KAFKA_SASL_USERNAME": "nobody", "LEADLINE_KAFKA_SASL_PASSWORD": "pw-zq7",
        "LEADLINE_REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
    }
    args = ["send", "-"] if command == "send" else ["worker"]
    result = subprocess.run([sys.executable, "-c", "from cli.main import main; main()", *args],
                            input=b'{"event_id":"e"}\n', env=env, capture_output=True,
                            timeout=60)
    err = result.stderr.decode()
    assert result.returncode == 3, err
    assert "Traceback" not in err and "pw-zq7" not in err
    assert "cannot reach the Kafka broker" in err and "SASL_PLAINTEXT" in err
    assert len(err.strip().splitlines()) == 1, err
    # aiokafka fails on the broker's SCRAM server-final message (an error, no 'v'): the
    # exchange ran to its last step and the broker refused the unknown user.
    assert "KeyError: 'v'" in err
