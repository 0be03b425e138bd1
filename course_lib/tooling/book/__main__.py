import sys

from course_lib.tooling.book import main

sys.exit(main())
