from airlake.cli import main

raise SystemExit(main())
