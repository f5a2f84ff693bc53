"""Kafka TLS / SASL and ``/metrics`` TLS, from the settings: one place for every client.

Faust (consumer, producer, admin), ``ensure_topics`` and ``leadline send`` all take
their security from here, so a worker can never talk to the broker one way and its
helper clients another. Secrets stay inside ``SecretStr`` until the client needs them.
"""

from __future__ import annotations

import ssl
from typing import Any

from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from leadline.config.settings import Settings


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The client TLS context for ``SSL`` / ``SASL_SSL`` (server certificate and host
    name verified; ``LEADLINE_KAFKA_SSL_CAFILE`` if set, else the system's trust store)."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)


def _password(settings: Settings) -> str | None:
    secret = settings.kafka_sasl_password
    return secret.get_secret_value() if secret is not None else None


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        kwargs.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                      sasl_plain_username=settings.kafka_sasl_username,
                      sasl_plain_password=_password(settings))
    return kwargs


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's ``broker_credentials`` (None for ``PLAINTEXT``)."""
    protocol = settings.kafka_security_protocol
    if protocol == "SSL":
        return SSLCredentials(kafka_ssl_context(settings))
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return SASLCredentials(username=settings.kafka_sasl_username,
                               password=_password(settings),
                               mechanism=settings.kafka_sasl_mechanism,
                               ssl_context=kafka_ssl_context(settings))
    return None


def web_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """Server TLS context for ``/metrics`` when ``LEADLINE_WEB_CERT`` / ``_KEY`` are set."""
    if settings.web_cert is None or settings.web_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.web_cert), str(settings.web_key))
    return context
