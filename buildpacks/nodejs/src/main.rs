use slugc_nodejs::NodejsBuildpack;

libcnb::buildpack_main!(NodejsBuildpack);
