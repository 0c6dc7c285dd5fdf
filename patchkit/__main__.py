import sys

from patchkit._entry import main

sys.exit(main())
