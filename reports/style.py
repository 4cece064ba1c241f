"""The report's inline stylesheet (no external fonts, CSS or scripts)."""

CSS = """
:root { --fg:#1d2330; --muted:#5d6778; --line:#e3e7ee; --bg:#ffffff; --soft:#f6f8fb;
        --accent:#1f5fbf; --ok:#1e7d3a; --bad:#b42318; --warn:#a15c00; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font: 14px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background:linear-gradient(180deg,#f3f6fb,#fff); border-bottom:1px solid var(--line);
         padding:22px 32px 10px; }
h1 { margin:0 0 6px; font-size:24px; letter-spacing:-0.01em; }
h1 .sub { font-weight:400; color:var(--muted); font-size:17px; margin-left:6px; }
ul.runs { margin:4px 0 10px; padding:0; list-style:none; color:var(--muted); font-size:13px; }
ul.runs li { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
nav { display:flex; flex-wrap:wrap; gap:4px 14px; font-size:13px; }
nav a { color:var(--accent); text-decoration:none; }
nav a:hover { text-decoration:underline; }
main { max-width:1280px; margin:0 auto; padding:8px 32px 48px; }
section { margin-top:28px; }
h2 { font-size:19px; margin:0 0 8px; padding-bottom:4px; border-bottom:2px solid var(--line); }
p.intro { color:var(--muted); max-width:900px; margin:4px 0 12px; }
p.note { color:var(--muted); font-size:12px; margin:-6px 0 16px; }
.table-wrap { overflow-x:auto; margin:10px 0 12px; }
table { border-collapse:collapse; font-size:13px; min-width:40%; }
caption { text-align:left; font-weight:600; font-size:14px; padding:4px 0 6px; }
th, td { padding:5px 10px; border-bottom:1px solid var(--line); vertical-align:top; text-align:left; }
thead th { background:var(--soft); color:#344054; font-weight:600; white-space:nowrap;
           border-bottom:2px solid #d0d6e0; }
thead th.group { text-align:center; border-left:2px solid #d0d6e0; }
tbody th { font-weight:600; white-space:nowrap; }
tbody tr:nth-child(even) { background:#fafbfd; }
tbody tr:hover { background:#f0f5ff; }
td.num { text-align:right; font-variant-numeric: tabular-nums; white-space:nowrap; }
td.key { color:var(--muted); }
td.best { font-weight:700; color:#0b3d91; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600;
         white-space:nowrap; }
.verdict-confirmed, .st-ok { background:#e3f4e8; color:var(--ok); }
.verdict-not-confirmed, .st-failed { background:#fde7e5; color:var(--bad); }
.verdict-depends { background:#fff1d6; color:var(--warn); }
.verdict-not-measured { background:#eef0f4; color:var(--muted); }
table.t-headline { width:100%; }
table.t-headline td.key { font-size:12px; max-width:240px; }
table.t-headline td.key:nth-child(3) { max-width:170px; }
table.t-headline td.fig { white-space:nowrap; font-variant-numeric: tabular-nums; }
table.t-headline td.fig small { color:var(--muted); font-size:11.5px; }
table.t-headline td.verdict { min-width:320px; max-width:620px; }
table.t-headline td.verdict .badge { margin-right:4px; }
table.t-headline .glance { display:flex; flex-wrap:wrap; gap:4px 10px; align-items:flex-start; }
table.t-headline .glance > div { flex:1 1 200px; }
table.t-headline img.spark { flex:none; height:auto; border:1px solid var(--line); border-radius:4px;
                             background:#fff; }
details.full { margin:3px 0 0; font-size:12px; color:var(--muted); }
details.full summary { font-weight:500; color:var(--accent); font-size:12px; }
table.t-headline tbody th { white-space:normal; min-width:110px; }
table.t-stages td:last-child { font-family: ui-monospace, Menlo, Consolas, monospace; font-size:12px; }
.warning { background:#fde7e5; border-left:4px solid var(--bad); padding:8px 14px; margin:16px 0;
           border-radius:4px; }
details { margin:8px 0; }
details.thresholds { background:var(--soft); border:1px solid var(--line); border-radius:6px;
                     padding:6px 14px; font-size:13px; }
details.thresholds ul { margin:6px 0; padding-left:18px; }
summary { cursor:pointer; font-weight:600; }
pre { background:var(--soft); border:1px solid var(--line); padding:10px; border-radius:6px;
      overflow-x:auto; font-size:12px; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size:12px; }
.plots { display:flex; flex-wrap:wrap; gap:18px; margin:14px 0; }
figure.plot { margin:0; flex:1 1 520px; border:1px solid var(--line);
              border-radius:8px; padding:10px; background:#fff; }
[data-g] { border-left:2px solid #d0d6e0; }
body.multi main { max-width:none; padding:8px 24px 48px; }
body.multi table.t-headline td.verdict { min-width:300px; }
body.multi table.t-headline .glance { flex-direction:column; gap:4px; }
body.multi table.t-headline td.fig { white-space:normal; }
body.multi table.t-headline td.key { font-size:11.5px; max-width:190px; }
figure.plot.wide { flex-basis:100%; }
table.t-metadata td, table.t-stages td:last-child { text-align:left; }
figure.plot img { width:100%; height:auto; display:block; }
figcaption { color:var(--muted); font-size:12px; margin-top:6px; }
"""
