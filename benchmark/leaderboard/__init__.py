"""Tables over many runs: reading run folders (runs, records), statistics over them (statistics), one table
model (table), the report formats that render it (formats: markdown, csv, html, latex, terminal, and any
registered one), figures (figures), and the `covseg leaderboard` command (command)."""
