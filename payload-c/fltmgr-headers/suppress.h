/* suppress.h - an empty stand-in for the WDK-only header of that name
   (it defines code-analysis warning numbers for #pragma prefast). */
