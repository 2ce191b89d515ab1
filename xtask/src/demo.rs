pub fn run() -> Result<(), String> { crate::build::run().map(|_| ()) }
