from casarray.cli import main

raise SystemExit(main())
