import sys

from clpipe.cli import main

sys.exit(main())
