from mfsoftmax.cli import main

raise SystemExit(main())
