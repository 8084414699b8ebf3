from mlops_lite.cli import main

main()
