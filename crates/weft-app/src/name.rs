//! App names: they become DNS labels and template references, so `[a-z0-9-]` only.

/// Checks an app id: 1 to 63 of `[a-z0-9-]`, not starting or ending with `-`.
pub fn check_app_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "app name {name:?} must be 1 to 63 of lowercase letters, digits and '-', not starting or ending with '-'"
        ))
    }
}
