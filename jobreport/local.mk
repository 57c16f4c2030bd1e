# The per-job record PowerGrad keeps in AdminComment: format, merge, parse.
noinst_LTLIBRARIES += jobreport/libjobreport.la
jobreport_libjobreport_la_SOURCES = jobreport/record.cpp jobreport/record.hpp
