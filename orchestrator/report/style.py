"""The report's inline stylesheet (system fonts only: nothing is fetched).

Pure: one constant.
"""

CSS = """
:root{--ink:#1f2933;--muted:#66727f;--line:#dde2e8;--ok:#2f9e55;--bad:#d64541;--okbg:#eaf6ee;
--badbg:#fcebea;--bg:#fbfcfd}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1480px;padding:20px 28px 40px;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
h1{font-size:24px;margin:0 0 6px;display:flex;align-items:center;gap:12px;flex-wrap:wrap}
h2{font-size:18px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:16px 0 6px;font-weight:600}
code,pre{font:12px/1.4 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
pre{white-space:pre-wrap;word-break:break-word;margin:4px 0}
.badge{font-size:12px;font-weight:700;letter-spacing:.06em;padding:3px 10px;border-radius:12px;
color:#fff}
.badge.pass{background:var(--ok)}.badge.fail{background:var(--bad)}.badge.unknown{background:var(--muted)}
.desc{margin:2px 0 10px;max-width:900px}
.meta{display:flex;flex-wrap:wrap;gap:4px 22px;margin:8px 0}
.meta .kv{white-space:nowrap}.meta .k{color:var(--muted);font-size:12px}
.versions{color:var(--muted);font-size:12px;margin:6px 0}.versions b{color:var(--ink);font-weight:600}
ul.notes{margin:8px 0;padding:8px 12px 8px 30px;background:#fff7e6;border:1px solid #f3d9a4;
border-radius:6px;font-size:13px}
nav{position:sticky;top:0;z-index:1;background:var(--bg);padding:8px 0;margin-top:10px;
border-bottom:1px solid var(--line);font-size:13px}
nav a{margin-right:14px;color:#1f4f99;text-decoration:none}nav a:hover{text-decoration:underline}
.caption{color:var(--muted);margin:4px 0 8px}
.figure{width:fit-content;max-width:100%;overflow-x:auto;background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px;
margin-bottom:10px}
.figure svg{display:block}
.matrices{display:flex;flex-wrap:wrap;gap:0 18px;align-items:flex-start}
.matrices .matrix{max-width:100%}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px;margin-bottom:10px}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f4f7;font-weight:600}
td.ok{color:var(--ok);font-weight:600}td.fail{color:var(--bad);font-weight:700}
td.ok,td.fail{white-space:nowrap}
tr.fail td{background:var(--badbg)}tr.ok td:first-child{box-shadow:inset 3px 0 var(--ok)}
tr.fail td:first-child{box-shadow:inset 3px 0 var(--bad)}
table.assertions tr.ok td{background:var(--okbg)}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.error{color:var(--bad)}
td.muted,span.muted{color:var(--muted)}
.matrices .family-diff{flex-basis:100%;margin-top:0}
footer{margin-top:30px;color:var(--muted);font-size:12px}
svg text{font-family:system-ui,"DejaVu Sans",sans-serif;font-size:11px;fill:var(--ink)}
svg .node-name{font-weight:700;font-size:12px}svg .node-ip{fill:var(--muted)}
svg .chip{font-size:10px}svg .chip.ip{fill:#1f4f99}
svg .rack-name{font-weight:700;fill:var(--muted)}
svg .axis{fill:var(--muted);font-size:11px;font-style:italic}
svg .tick{fill:var(--muted);font-size:10px}svg .value{font-size:10px;font-weight:600}
svg .bad{fill:var(--bad);font-size:10px;font-weight:600}
svg .fault-label{fill:#b35f0c;font-size:10px;font-weight:600}
svg rect.cell:hover,svg .event:hover{stroke:#000;stroke-width:1.5}
@media print{nav{position:static}.figure{overflow:visible}}
"""
