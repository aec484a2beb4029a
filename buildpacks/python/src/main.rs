use slugc_python::PythonBuildpack;

libcnb::buildpack_main!(PythonBuildpack);
