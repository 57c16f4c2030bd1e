# powergrad: the command for users and admins (report; later status and set-budget).
noinst_LTLIBRARIES += tools/libtools.la
tools_libtools_la_SOURCES = tools/job_report.cpp tools/job_report.hpp
tools_libtools_la_LIBADD = jobreport/libjobreport.la

bin_PROGRAMS += tools/powergrad
tools_powergrad_SOURCES = tools/powergrad.cpp
tools_powergrad_LDADD = tools/libtools.la
dist_man_MANS += doc/powergrad.1
