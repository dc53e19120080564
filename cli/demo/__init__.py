"""`iiswatch demo` (command.py) and its data: a generated day of IIS logs with an attack in it
(sample_day.py), written the way IIS writes them (w3c.py); bench_lines.py feeds the benches."""
