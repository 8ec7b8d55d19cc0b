//! `fluxtune render` and `fluxtune crd`: the offline half of the binary.

use std::{fmt::Write as _, io::Read, path::PathBuf};

use kube::ResourceExt;

use crate::{
    api::FluxProfile,
    render::{
        self, Capabilities, Rendered,
        validate::{InputError, Validator},
    },
};

/// Reads every file ("-" is stdin), validates every profile, and returns the YAML for stdout and
/// the budget report for stderr; any invalid input fails the whole call, so stdout stays empty.
/// Errors come one per line, each naming its file, document and field.
pub fn render_files(files: &[PathBuf], caps: &Capabilities) -> Result<(String, String), String> {
    let inputs = files
        .iter()
        .map(|file| {
            let name = file.display().to_string();
            read(file)
                .map(|text| (name.clone(), text))
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    render_inputs(&Validator::new(), &inputs, caps)
}

/// [`render_files`] once the files are read: `inputs` are (file name, text) pairs.
pub fn render_inputs(
    validator: &Validator,
    inputs: &[(String, String)],
    caps: &Capabilities,
) -> Result<(String, String), String> {
    let mut profiles = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in inputs {
        match validator.profiles_from_yaml(text) {
            Ok(found) => profiles.extend(found),
            Err(InputError::Invalid {
                index,
                errors: found,
            }) => errors.extend(
                found
                    .iter()
                    .map(|e| format!("{file}: document {index}: {e}")),
            ),
            Err(e) => errors.push(format!("{file}: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    if profiles.is_empty() {
        return Err("no FluxProfile found in the input".into());
    }
    let rendered: Vec<(FluxProfile, Rendered)> = profiles
        .into_iter()
        .map(|p| {
            let r = render::render(&p, caps);
            (p, r)
        })
        .collect();
    Ok((objects_yaml(&rendered), budget_report(&rendered)))
}

fn read(file: &PathBuf) -> std::io::Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(file)
    }
}

/// Multi-document YAML, one document per object, in render order.
pub fn objects_yaml(rendered: &[(FluxProfile, Rendered)]) -> String {
    let mut out = String::new();
    for (_, r) in rendered {
        for object in &r.objects {
            out.push_str("---\n");
            let yaml = serde_saphyr::to_string(object).expect("Flux objects serialize to YAML");
            out.push_str(yaml.trim_end());
            out.push('\n');
        }
    }
    out
}

pub fn budget_report(rendered: &[(FluxProfile, Rendered)]) -> String {
    let mut out = String::new();
    for (profile, r) in rendered {
        let b = r.latency_budget.status();
        let _ = writeln!(
            out,
            "# {name} ({class:?}): image to deploy {ie} expected, {iw} worst; commit to deploy {ce} expected, {cw} worst{wl}{rl} (processing allowance {p})",
            name = profile.name_any(),
            class = r.class,
            ie = b.image_to_deploy.expected,
            iw = b.image_to_deploy.worst,
            ce = b.commit_to_deploy.expected,
            cw = b.commit_to_deploy.worst,
            wl = b
                .webhook_lost
                .as_ref()
                .map(|w| format!("; webhook lost {w} worst"))
                .unwrap_or_default(),
            rl = b
                .registry_webhook_lost
                .as_ref()
                .map(|w| format!("; registry webhook lost {w} worst"))
                .unwrap_or_default(),
            p = b.processing,
        );
    }
    out
}
