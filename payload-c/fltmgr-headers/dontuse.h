/* dontuse.h - an empty stand-in for the WDK-only header of that name
   (it marks deprecated routines for the WDK's code analysis). */
