from distok_cli.cli.entry import run

run()
