import sys

from qa.cli.commands import main

sys.exit(main())
