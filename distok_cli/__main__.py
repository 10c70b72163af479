from distok_cli.cli.app import run

run()
