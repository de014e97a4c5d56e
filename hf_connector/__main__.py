from hf_connector.cli import main

main()
