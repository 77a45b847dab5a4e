"""The embed stage: its plugin protocol (``protocol``), its assets (``assets``) and its
conformance checks (``checks``)."""
