from deploy.grafana.dashboards_src.render import main

raise SystemExit(main())
