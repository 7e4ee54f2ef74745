from __future__ import annotations

from mcagent.cli import main

raise SystemExit(main())
