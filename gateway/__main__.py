"""``python -m gateway`` is the ``dcr-gateway`` command."""

from gateway.cli import main

raise SystemExit(main())
