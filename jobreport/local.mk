# The per-job record PowerGrad keeps in AdminComment (format, merge, parse), and the per-job
# power series behind `powergrad report --plot`.
noinst_LTLIBRARIES += jobreport/libjobreport.la
jobreport_libjobreport_la_SOURCES = jobreport/record.cpp jobreport/record.hpp \
	jobreport/series.cpp jobreport/series.hpp
